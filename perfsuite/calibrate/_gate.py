"""`perfsuite calibrate` (no scenario): how far to trust the stored-baseline gate on *this* runner.

Before a team gates merges on `--perf-compare=NAME --perf-fail=PCT`, it should know two
numbers for its own runner and its own perf tests: how often unchanged code fails (A/A
false-alarm rate) and how large a slowdown the gate catches reliably. This command measures
both with real pytest sessions, exactly as CI would run them:

1. Save a baseline of `--sessions` sessions (`--perf-save`, under a throwaway name that is
   deleted afterwards; `latest.json` is never touched: every session writes its JSON to a
   temporary directory).
2. A/A: `--aa` sessions of the unchanged tests, each compared with that baseline. A session
   *fails* when the gate reports a regression.
3. Slowdowns, smallest first (`--slowdowns`, default 1.1, 1.25, 1.5, 2, 3): `--trials`
   sessions each with every timed call made that many times slower, until one is caught in
   at least `CAUGHT` (80%) of its sessions: that is the smallest slowdown caught at 80%.

How a slowdown is made: `PERFSUITE_CALIBRATE_SLOWDOWN=F` in a session's environment makes the
engine wrap every candidate so that each timed call waits for its work and then busy-waits
(F - 1) times the call's own cost (`perfsuite._calibrate.slowed`, called by perfsuite._engine).
The extra time is real work, paid in the same process with the machine's noise on it, not a
multiplied number. Limits: a call is then waited for one by one (an accelerator's queue no
longer overlaps calls), and the slowdown is uniform, while a real regression may hit one test
only. Counts and memory are read from the unwrapped callable.

Rates come with 95% Wilson intervals; the output is Markdown (`--markdown PATH` too). The
`--builtin` workload (a pure-Python loop and a chain of small matrix products, in a temporary
directory) calibrates the runner itself; `-- <pytest args>` calibrates the user's own tests.
Progress goes to stderr, one line a session.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._calibrate import SLOWDOWN_ENV
from .._errors import PerfUsageError
from ._rates import Rate, progress, write_json, write_text


#: A slowdown is "caught" when at least this share of its sessions failed the gate.
CAUGHT = 0.8
DEFAULT_SLOWDOWNS = (1.1, 1.25, 1.5, 2.0, 3.0)

BUILTIN_TESTS = """\
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest

pytestmark = pytest.mark.perf
A = np.random.default_rng(0).standard_normal((64, 64)) / 8


def _loop():
    s = 0
    for i in range(20000):
        s += i
    return s


def _chain():
    x = A
    for _ in range(40):
        x = x @ A
    return x


def test_loop(perf):
    perf.measure(_loop, name="loop")


def test_chain(perf):
    perf.measure(_chain, name="chain")
"""


@dataclasses.dataclass(frozen=True)
class CalibrationConfig:
    """What one `perfsuite calibrate` run does (validated on creation)."""

    pytest_args: tuple[str, ...]
    aa: int = 20
    trials: int = 10
    sessions: int = 1
    slowdowns: tuple[float, ...] = DEFAULT_SLOWDOWNS
    fail: str = "5%"
    budget_s: float = 1800.0
    rootdir: Path = Path(".")

    def __post_init__(self) -> None:
        for name in ("aa", "trials", "sessions"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise PerfUsageError(f"--{name} must be a whole number >= 1, got {value!r}.")
        if not self.slowdowns or any(not s > 1.0 for s in self.slowdowns):
            raise PerfUsageError(
                f"--slowdowns must be factors > 1 (e.g. 1.1,1.5,2), got {self.slowdowns!r}."
            )
        if list(self.slowdowns) != sorted(self.slowdowns):
            raise PerfUsageError(
                f"--slowdowns must be in increasing order (the smallest caught is searched "
                f"for), got {self.slowdowns!r}."
            )
        from .._values import parse_fail

        try:  # a bad expression is named before any session runs
            parse_fail(self.fail)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise PerfUsageError(f"--fail {self.fail!r}: {exc}") from None
        if not self.budget_s > 0:
            raise PerfUsageError(f"--budget must be positive, got {self.budget_s!r}.")


@dataclasses.dataclass
class Scenario:
    """The sessions of one scenario (A/A or one slowdown) and how many failed the gate."""

    slowdown: float
    failed: int = 0
    sessions: int = 0
    errors: int = 0
    seconds: list[float] = dataclasses.field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.failed / self.sessions if self.sessions else 0.0

    def as_dict(self) -> dict[str, Any]:
        lo, hi = Rate(self.failed, self.sessions).wilson95
        return {
            "slowdown": self.slowdown,
            "failed": self.failed,
            "sessions": self.sessions,
            "errors": self.errors,
            "rate": self.rate,
            "wilson95": [lo, hi],
            "median_session_s": sorted(self.seconds)[len(self.seconds) // 2]
            if self.seconds
            else None,
        }


class _Sessions:
    """Runs pytest sessions of the user's tests with a private results directory."""

    def __init__(self, cfg: CalibrationConfig, workdir: Path, name: str):
        self.cfg, self.workdir, self.name = cfg, workdir, name
        self.n = 0

    def run(self, extra: list[str], slowdown: float | None) -> tuple[int, dict[str, Any], float]:
        self.n += 1
        out = self.workdir / f"session-{self.n}.json"
        env = dict(os.environ)
        env.pop(SLOWDOWN_ENV, None)
        if slowdown is not None:
            env[SLOWDOWN_ENV] = repr(slowdown)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--perf"]
        cmd += [f"--perf-json={out}", *extra, *self.cfg.pytest_args]
        start = time.perf_counter()
        proc = subprocess.run(
            cmd, cwd=self.cfg.rootdir, env=env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - start
        try:
            doc = json.loads(out.read_text())
        except (OSError, ValueError):
            doc = {}
        if proc.returncode not in (0, 1) or not doc:
            tail = [x[:200] for x in (proc.stdout + proc.stderr).strip().splitlines()[-4:]]
            raise PerfUsageError(
                f"a calibration session exited {proc.returncode} without results "
                f"({' '.join(cmd)}): " + " | ".join(tail)
            )
        return proc.returncode, doc, seconds


def _failed_gate(rc: int, doc: dict[str, Any]) -> bool:
    return rc == 1 and bool((doc.get("baseline") or {}).get("regressions"))


def run_calibration(
    cfg: CalibrationConfig, *, progress: Callable[[str], None] = lambda line: None
) -> dict[str, Any]:
    """Save a throwaway baseline, run the A/A and slowdown sessions; the results document."""
    name = f"calibrate-{os.getpid()}"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="perfsuite-calibrate-") as tmp:
        runs = _Sessions(cfg, Path(tmp), name)
        saved: list[Path] = []
        try:
            for i in range(cfg.sessions):
                rc, doc, s = runs.run([f"--perf-save={name}"], None)
                if rc != 0:
                    raise PerfUsageError(
                        f"the tests failed while saving the calibration baseline (exit {rc}): "
                        "calibrate a suite that passes."
                    )
                progress(f"[calibrate] baseline session {i + 1}/{cfg.sessions} saved ({s:.1f} s)")
            saved = sorted((cfg.rootdir / ".perf").glob(f"*/*_{name}.json"))
            gate = [f"--perf-compare={name}", f"--perf-fail={cfg.fail}"]
            aa = Scenario(1.0)
            scenarios = [aa]
            for _ in range(cfg.aa):
                if time.monotonic() - started > cfg.budget_s:
                    break
                _one(runs, gate, aa, None)
                progress(_line("A/A", aa, cfg.aa))
            caught = None
            for factor in cfg.slowdowns:
                sc = Scenario(factor)
                scenarios.append(sc)
                for _ in range(cfg.trials):
                    if time.monotonic() - started > cfg.budget_s:
                        break
                    _one(runs, gate, sc, factor)
                    progress(_line(f"x{factor:g}", sc, cfg.trials))
                if sc.sessions and sc.rate >= CAUGHT:
                    caught = factor
                    break
                if time.monotonic() - started > cfg.budget_s:
                    break
        finally:
            saved = saved or sorted((cfg.rootdir / ".perf").glob(f"*/*_{name}.json"))
            for path in saved:  # the throwaway baseline goes; nothing else was written
                path.unlink(missing_ok=True)
    return {
        "pytest_args": list(cfg.pytest_args),
        "fail": cfg.fail,
        "baseline_sessions": cfg.sessions,
        "caught_at": CAUGHT,
        "smallest_caught": caught,
        "seconds": time.monotonic() - started,
        "budget_s": cfg.budget_s,
        "scenarios": [s.as_dict() for s in scenarios],
    }


def _one(runs: _Sessions, gate: list[str], sc: Scenario, slowdown: float | None) -> None:
    rc, doc, seconds = runs.run(gate, slowdown)
    sc.sessions += 1
    sc.seconds.append(seconds)
    if _failed_gate(rc, doc):
        sc.failed += 1
    elif rc == 1:
        sc.errors += 1  # tests that failed for another reason: not the gate's verdict


def _line(label: str, sc: Scenario, of: int) -> str:
    return (
        f"[calibrate] {label} {sc.sessions}/{of}: {sc.failed} failed the gate "
        f"({Rate(sc.failed, sc.sessions).cell()}), {sc.seconds[-1]:.1f} s"
    )


def render_markdown(doc: dict[str, Any]) -> str:
    """The calibration as a Markdown table, with what it means."""
    lines = [
        f"## `perfsuite calibrate`: --perf-fail={doc['fail']}, "
        f"{doc['baseline_sessions']}-session baseline",
        "",
        "| scenario | failed / sessions | rate (95% Wilson) | other test failures | s/session |",
        "|---|---|---|---|---|",
    ]
    for s in doc["scenarios"]:
        label = "A/A (unchanged)" if s["slowdown"] == 1.0 else f"{s['slowdown']:g}x slower"
        med = s["median_session_s"]
        # A scenario the budget left without sessions reads 0% [0%, 100%], as it always did.
        rate = Rate(s["failed"], s["sessions"]).cell() if s["sessions"] else "0% [0%, 100%]"
        lines.append(
            f"| {label} | {s['failed']}/{s['sessions']} | {rate} "
            f"| {s['errors']} | {'' if med is None else f'{med:.1f}'} |"
        )
    caught = doc["smallest_caught"]
    lines += [
        "",
        f"Smallest slowdown caught in >= {doc['caught_at']:.0%} of sessions: "
        + (f"**{caught:g}x**." if caught else "none of those tried (within the budget)."),
        "A slowdown is every timed call made that much slower (busy-waiting, in the session): "
        "uniform over the tests. For smaller effects use `perfsuite ab` (side by side).",
    ]
    return "\n".join(lines)


def builtin_project(folder: Path) -> Path:
    """Write the built-in calibration workload into `folder`; returns its test file."""
    folder.mkdir(parents=True, exist_ok=True)
    test = folder / "test_perfsuite_calibration.py"
    test.write_text(BUILTIN_TESTS)
    return test


def run_gate(args: Any, pytest_args: Sequence[str], write: Callable[[str], None]) -> int:
    """`perfsuite calibrate`: run it, print the Markdown, write `--json`/`--markdown`."""
    args = own_options(args)
    tmp = None
    rootdir = Path.cwd()
    if args.builtin:
        if pytest_args:
            raise PerfUsageError("--builtin takes no pytest arguments after `--`.")
        tmp = Path(tempfile.mkdtemp(prefix="perfsuite-calibrate-builtin-"))
        pytest_args = [str(builtin_project(tmp))]
        rootdir = tmp
    elif not pytest_args:
        raise PerfUsageError(
            "give the perf tests to calibrate after `--` (e.g. `perfsuite calibrate -- "
            "tests/test_perf.py`), or --builtin for the runner alone."
        )
    try:
        cfg = CalibrationConfig(
            tuple(pytest_args),
            aa=args.aa,
            trials=args.trials,
            sessions=args.sessions,
            slowdowns=tuple(args.slowdowns),
            fail=args.fail,
            budget_s=args.budget,
            rootdir=rootdir,
        )
        doc = run_calibration(cfg, progress=progress)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    text = render_markdown(doc)
    write(text)
    write_json(args.json, doc)
    write_text(args.markdown, text)
    return 0


def parse_factors(text: str) -> list[float]:
    """`--slowdowns 1.1,1.5,2`: factors (their order and range are checked with the rest of
    the configuration, `CalibrationConfig`)."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated factors such as 1.1,1.5,2, got {text!r}"
        ) from None


#: The namespace prefix of this calibration's options: `perfsuite calibrate SCENARIO` parses
#: its own options into the same namespace (some share a name, e.g. `--trials`, `--json`),
#: so the ones of the gate stay apart and can be told from them.
PREFIX = "gate_"


def add_arguments(cal: argparse.ArgumentParser) -> None:
    """The options of `perfsuite calibrate` without a scenario (this gate's)."""
    from .._values import parse_path, parse_positive_int, parse_seconds

    def option(name: str, **kw: Any) -> None:
        if kw.get("action") != "store_true":
            kw.setdefault("metavar", name.upper())
        cal.add_argument(f"--{name}", dest=PREFIX + name, **kw)

    option("builtin", action="store_true", help="calibrate perfsuite's own workload")
    option("aa", type=parse_positive_int, default=20, help="A/A sessions (20)")
    option("trials", type=parse_positive_int, default=10, help="sessions per slowdown (10)")
    option("sessions", type=parse_positive_int, default=1, help="sessions in the baseline (1)")
    option(
        "slowdowns",
        type=parse_factors,
        default=list(DEFAULT_SLOWDOWNS),
        help="factors to try, smallest first (1.1,1.25,1.5,2,3)",
    )
    option("fail", default="5%", help="the --perf-fail expression judged (5%%)")
    option("budget", type=parse_seconds, default=1800.0, help="seconds in all (1800)")
    option("json", type=parse_path, default=None, help="write the results document here")
    option("markdown", type=parse_path, default=None, help="write the Markdown table here")


def own_options(args: argparse.Namespace) -> argparse.Namespace:
    """This calibration's options from the command's namespace, without their prefix."""
    return argparse.Namespace(
        **{k.removeprefix(PREFIX): v for k, v in vars(args).items() if k.startswith(PREFIX)}
    )
