"""`perfsuite ab BASE [HEAD]`: two revisions measured side by side in paired processes.

Why processes: on a shared machine a process of identical code can run several percent
faster or slower than the next one for its whole life (on the 2-core CI VM, two processes of
one pure-Python loop, pinned to the same CPU and measured in alternating rounds, differed by
up to 7%), so the unit of replication is the process and every verdict averages over many.
Each run is one `pytest --perf --perf-json=...` in the revision's worktree; every series it
measured is reduced to one robust number per run (the median of its per-round samples).

Why side by side: the machine's speed also drifts over seconds and differs between CPUs.
The two runs of a pair, `(BASE_i, HEAD_i)`, therefore start together and take strict turns
(`perfsuite._turns`): one timed round of BASE, one of HEAD, ..., each while the other waits,
both pinned to the same CPU (rotating over the allowed CPUs from pair to pair; `--no-pin`
leaves placement to the OS). Which side measures first alternates from pair to pair.

The paired log-ratios `log(HEAD_i / BASE_i)` get a confidence interval for their centre:
by default the Wilcoxon signed-rank (Hodges-Lehmann) interval, which assumes only that the
differences are symmetric about their centre, true for A/A by exchangeability and a good
approximation under a shift, and needs fewer pairs than the sign test for the same width
(asymptotic efficiency 0.95 vs 0.64 under normal noise); `--test sign` uses the
distribution-free sign-test interval instead. A measurement is a **regression** when the
interval's lower bound exceeds the `--fail` limit, **no regression** when its upper bound is
within it; otherwise more pairs run until `--max-runs` or `--budget`, and the verdict is
**inconclusive**, which is never reported as a pass.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from . import _turns as turns
from ._ab_report import render_markdown, render_text, write_json_report  # noqa: F401
from ._format import fmt_seconds
from ._options import FailExpr
from ._results import SchemaError, load_document
from ._stats import TESTS, paired_interval, signed_rank_interval  # noqa: F401  (re-exported)


EXIT_OK, EXIT_REGRESSION, EXIT_ERROR, EXIT_INCONCLUSIVE = 0, 1, 2, 3

AB_SCHEMA = "perfsuite.ab"
AB_SCHEMA_VERSION = 1


class AbError(Exception):
    """`perfsuite ab` cannot give a verdict (bad revision, a run that crashed, no data)."""


def run_statistics(doc: dict[str, Any], stat: str | None) -> dict[str, tuple[str, float]]:
    """One robust number per series of one run: `{series id: (statistic, seconds)}`.

    `stat=None` takes the median of the rounds (or steps) for every kind: on the CI VM it
    varied less from process to process than the min (2-4% vs 3-7% for one loop), which
    follows single unusually fast rounds.
    """
    out: dict[str, tuple[str, float]] = {}
    for m in doc.get("measurements", []):
        kind = m.get("kind")
        if kind == "measure":
            found = [(m["id"], m["candidate"]["samples_s"], "median")]
        elif kind == "steps":
            found = [(m["id"], m["steps"]["samples_s"], "median")]
        elif kind == "compare":
            found = [
                (f"{m['test']}::{c['name']}", c["samples_s"], "median")
                for c in m["comparison"]["candidates"]
            ]
        else:
            continue
        for sid, samples, default in found:
            x = np.asarray(samples, dtype=float)
            x = x[np.isfinite(x) & (x > 0)]
            if x.size == 0:
                continue
            name = stat or default
            value = {"min": np.min, "median": np.median, "mean": np.mean}[name](x)
            out[sid] = (name, float(value))
    return out


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class AbConfig:
    """Everything `perfsuite ab` was asked to do, checked once by the CLI."""

    base: str
    head: str | None
    pytest_args: tuple[str, ...]
    fail: FailExpr
    #: Statistic per run forced by `--fail stat:X%`, or None for the median.
    stat: str | None = None
    min_runs: int = 8
    max_runs: int = 30
    budget_s: float = 900.0
    level: float = 0.99
    test: str = "signed-rank"
    repo: Path = field(default_factory=Path.cwd)
    run_timeout_s: float = 600.0
    python: str = sys.executable
    #: Pin both runs of a pair to one CPU (rotating from pair to pair).
    pin: bool = True
    #: Run the two sides of a pair one after the other (for workloads that cannot share the
    #: machine, e.g. a model that fills the GPU's memory).
    sequential: bool = False


@dataclass
class Series:
    """The per-run numbers of one series id on both sides."""

    sid: str
    stat: str = ""
    base: list[float | None] = field(default_factory=list)
    head: list[float | None] = field(default_factory=list)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        both = [(b, h) for b, h in zip(self.base, self.head) if b is not None and h is not None]
        if not both:
            return np.zeros(0), np.zeros(0)
        b, h = np.asarray(both, dtype=float).T
        return b, h


@dataclass
class Verdict:
    sid: str
    stat: str
    verdict: str
    ratio: float
    low: float
    high: float
    pairs: int
    base_s: float
    head_s: float
    limit: float
    level: float
    test: str

    @property
    def decided(self) -> bool:
        return self.verdict != "inconclusive"

    def as_dict(self) -> dict[str, Any]:
        return {
            "series": self.sid,
            "statistic": self.stat,
            "verdict": self.verdict,
            "ratio": _finite(self.ratio),
            "low": _finite(self.low),
            "high": _finite(self.high),
            "pairs": self.pairs,
            "base_s": _finite(self.base_s),
            "head_s": _finite(self.head_s),
            "limit": self.limit,
            "level": self.level,
            "test": self.test,
        }

    def describe(self) -> str:
        if math.isfinite(self.low):
            ci = f"{self.level:.0%} CI {self.low:.3f}x..{self.high:.3f}x"
        else:
            ci = f"too few pairs for a {self.level:.0%} interval"
        return (
            f"{self.verdict.upper()} {self.sid}: HEAD/BASE {self.ratio:.3f}x ({ci}; "
            f"{self.pairs} run pairs, {self.stat} per run {fmt_seconds(self.base_s)} -> "
            f"{fmt_seconds(self.head_s)}); rule: regression if the lower bound > {self.limit:.3g}x, "
            f"no regression if the upper bound <= {self.limit:.3g}x."
        )


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def judge(series: Series, cfg: AbConfig) -> Verdict:
    b, h = series.pairs()
    limit = 1.0 + cfg.fail.fraction
    if b.size == 0:
        # Measured by one revision only (a new or removed test): nothing to compare.
        side = "HEAD" if any(x is not None for x in series.head) else "BASE"
        return Verdict(
            series.sid,
            series.stat,
            f"only in {side}",
            math.nan,
            -math.inf,
            math.inf,
            0,
            math.nan,
            math.nan,
            limit,
            cfg.level,
            cfg.test,
        )
    logs = np.log(h) - np.log(b)
    mid, low, high = paired_interval(logs, level=cfg.level, test=cfg.test)
    # An unbounded side stays infinite (not exp(-inf) = 0): "no claim yet", not "0x".
    ratio = math.exp(mid)
    rlow = math.exp(low) if math.isfinite(low) else -math.inf
    rhigh = math.exp(high) if math.isfinite(high) else math.inf
    if rlow > limit:
        verdict = "regression"
    elif rhigh <= limit:
        verdict = "no regression"
    else:
        verdict = "inconclusive"
    return Verdict(
        series.sid,
        series.stat,
        verdict,
        ratio,
        rlow,
        rhigh,
        int(b.size),
        float(np.median(b)),
        float(np.median(h)),
        limit,
        cfg.level,
        cfg.test,
    )


# --------------------------------------------------------------------------- git and runs


def _git(repo: Path, *args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AbError(f"git {' '.join(args)} failed in {repo}: {exc}") from None
    if proc.returncode != 0:
        raise AbError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def resolve_commit(repo: Path, rev: str, arg: str) -> str:
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except AbError:
        raise AbError(
            f"`{arg}`={rev!r} is not a commit of the repository at {repo} "
            "(expected a branch, tag or commit, e.g. 'main' or 'HEAD~1')."
        ) from None


@contextlib.contextmanager
def worktrees(repo: Path, revs: dict[str, str]) -> Iterator[dict[str, Path]]:
    """Detached worktrees of `revs` (`{side: commit}`) in a temporary folder, removed after."""
    tmp = Path(tempfile.mkdtemp(prefix="perfsuite-ab-"))
    made: list[Path] = []
    try:
        out = {}
        for side, commit in revs.items():
            path = tmp / side.lower()
            _git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit)
            made.append(path)
            out[side] = path
        yield out
    finally:
        for path in made:
            with contextlib.suppress(AbError):
                _git(repo, "worktree", "remove", "--force", str(path))
        with contextlib.suppress(AbError):
            _git(repo, "worktree", "prune")
        shutil.rmtree(tmp, ignore_errors=True)


def _needs_plugin_flag(env: dict[str, str]) -> bool:
    """`-p perfsuite.plugin` only when the entry point will not load it (twice is an error)."""
    if env.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return True
    from importlib.metadata import entry_points

    return not any(ep.value == "perfsuite.plugin" for ep in entry_points(group="pytest11"))


def run_env(tree: Path) -> dict[str, str]:
    """Environment of one run: the worktree's own code first on the import path."""
    env = dict(os.environ)
    paths = [str(tree / "src"), str(tree)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


@dataclass
class RunResult:
    side: str
    index: int
    seconds: float
    returncode: int
    stats: dict[str, tuple[str, float]]


def _command(cfg: AbConfig, json_path: Path, env: dict[str, str]) -> list[str]:
    cmd = [cfg.python, "-m", "pytest", "--perf", f"--perf-json={json_path}", "-q"]
    cmd += ["-p", "no:cacheprovider"]  # leave the measured tree untouched
    if _needs_plugin_flag(env):
        cmd += ["-p", "perfsuite.plugin"]
    return cmd + list(cfg.pytest_args)


def _result(
    cfg: AbConfig, side: str, index: int, tree: Path, cmd: list[str], json_path: Path,
    returncode: int, output: str, seconds: float,
) -> RunResult:  # fmt: skip
    tail = "\n".join(output.strip().splitlines()[-25:])
    if returncode not in (0, 1):
        raise AbError(
            f"{side} run {index + 1} in {tree} exited with {returncode} "
            f"(pytest: 2 interrupted, 3 internal error, 4 usage error, 5 no tests collected).\n"
            f"command: {' '.join(cmd)}\n{tail}"
        )
    try:
        doc = load_document(json_path)
    except SchemaError as exc:
        raise AbError(f"{side} run {index + 1} wrote no usable results: {exc}\n{tail}") from None
    return RunResult(side, index, seconds, returncode, run_statistics(doc, cfg.stat))


def run_once(cfg: AbConfig, side: str, index: int, tree: Path, out_dir: Path) -> RunResult:
    """One run on its own (no partner): what `run_pair` does for each side, sequentially."""
    json_path = out_dir / f"{side.lower()}-{index:03d}.json"
    env = run_env(tree)
    cmd = _command(cfg, json_path, env)
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=cfg.run_timeout_s
        )
    except subprocess.TimeoutExpired:
        raise AbError(
            f"{side} run {index + 1} ({' '.join(cmd)}) took longer than {cfg.run_timeout_s:g} s."
        ) from None
    seconds = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    return _result(cfg, side, index, tree, cmd, json_path, proc.returncode, output, seconds)


def pair_cpu(index: int, pin: bool) -> int | None:
    """The CPU both runs of pair `index` are pinned to, rotating over the allowed ones."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[index % len(allowed)]


def run_pair(
    cfg: AbConfig, index: int, order: tuple[str, str], trees: dict[str, Path], out_dir: Path
) -> list[RunResult]:
    """Both runs of pair `index` at once, taking turns (see the module docstring).

    `order[0]` measures first. When one run exits, the other is told to go on alone.
    """
    inbox = {side: out_dir / f"turns-{side.lower()}-{index:03d}" for side in order}
    fds = []
    procs: dict[str, tuple[subprocess.Popen, list[str], Path, Any, float]] = {}
    cpu = pair_cpu(index, cfg.pin)
    try:
        for path in inbox.values():
            os.mkfifo(path)
            # Held open here for the whole pair: a FIFO with no open end drops its data, and
            # a run may exit before its partner has opened the inbox we write to.
            fds.append(os.open(path, os.O_RDWR))
        for k, side in enumerate(order):
            other = order[1 - k]
            json_path = out_dir / f"{side.lower()}-{index:03d}.json"
            env = run_env(trees[side])
            # The second in `order` hands the token over first, so the first measures first.
            spec = f"{inbox[side]}:{inbox[other]}:{k}" + ("" if cpu is None else f":{cpu}")
            env[turns.ENV] = spec
            cmd = _command(cfg, json_path, env)
            log = open(out_dir / f"{side.lower()}-{index:03d}.log", "w+")  # noqa: SIM115
            proc = subprocess.Popen(
                cmd, cwd=trees[side], env=env, stdout=log, stderr=subprocess.STDOUT, text=True
            )
            procs[side] = (proc, cmd, json_path, log, time.perf_counter())
        results: dict[str, RunResult] = {}
        deadline = time.perf_counter() + cfg.run_timeout_s
        while len(results) < len(order):
            for k, side in enumerate(order):
                proc, cmd, json_path, log, started = procs[side]
                if side in results or proc.poll() is None:
                    continue
                seconds = time.perf_counter() - started
                # The partner may be waiting for a turn this run will never hand over.
                os.write(fds[1 - k], turns.PARTNER_GONE)
                log.seek(0)
                results[side] = _result(
                    cfg, side, index, trees[side], cmd, json_path, proc.returncode,
                    log.read(), seconds,
                )  # fmt: skip
            if time.perf_counter() > deadline:
                raise AbError(
                    f"pair {index + 1} ({' and '.join(order)}) took longer than "
                    f"{cfg.run_timeout_s:g} s."
                )
            time.sleep(0.005)
        return [results[side] for side in order]
    finally:
        for proc, _, _, log, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
        for fd in fds:
            os.close(fd)
        for path in inbox.values():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


# --------------------------------------------------------------------------- the loop


class Progress:
    """One status line per run pair (rewritten in place on a terminal)."""

    def __init__(self, stream: TextIO | None):
        self.stream = stream
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())

    def update(self, text: str, *, final: bool = False) -> None:
        if self.stream is None:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _looks(cfg: AbConfig) -> set[int]:
    """Pair counts at which the data is looked at: min_runs, then growing by about 1/4.

    Fewer looks mean fewer chances of an early wrong decision (every look is a test).
    """
    out, n = set(), cfg.min_runs
    while n < cfg.max_runs:
        out.add(n)
        n += max(1, n // 4)
    out.add(cfg.max_runs)
    return out


def run_ab(
    cfg: AbConfig,
    *,
    progress: Progress | None = None,
    runner: Callable[[AbConfig, str, int, Path, Path], RunResult] | None = None,
) -> dict[str, Any]:
    """Run the paired comparison and return the report document (see `AB_SCHEMA`).

    Pairs run side by side (`run_pair`); a `runner` (tests) runs the two sides one after the
    other instead.
    """
    progress = progress or Progress(None)
    if runner is None and cfg.sequential:
        runner = run_once
    repo = Path(_git(cfg.repo, "rev-parse", "--show-toplevel"))
    revs = {"BASE": resolve_commit(repo, cfg.base, "BASE")}
    if cfg.head is not None:
        revs["HEAD"] = resolve_commit(repo, cfg.head, "HEAD")
    started = time.perf_counter()
    series: dict[str, Series] = {}
    warnings: list[str] = []
    run_log: list[dict[str, Any]] = []
    verdicts: list[Verdict] = []
    stop_reason = "max-runs"
    looks = _looks(cfg)
    with worktrees(repo, revs) as trees, tempfile.TemporaryDirectory() as out:
        if cfg.head is None:
            trees["HEAD"] = repo  # the working tree as it is, uncommitted changes included
        pair_s = 0.0
        for i in range(cfg.max_runs):
            elapsed = time.perf_counter() - started
            if i >= cfg.min_runs and elapsed + pair_s > cfg.budget_s:
                stop_reason = "budget"
                break
            order = ("BASE", "HEAD") if i % 2 == 0 else ("HEAD", "BASE")
            t0 = time.perf_counter()
            progress.update(f"perfsuite ab: pair {i + 1}/{cfg.max_runs}: running ...")
            if runner is None:
                pair = run_pair(cfg, i, order, trees, Path(out))
            else:
                pair = [runner(cfg, side, i, trees[side], Path(out)) for side in order]
            for side, res in zip(order, pair):
                run_log.append(
                    {"side": side, "pair": i, "seconds": res.seconds, "returncode": res.returncode}
                )
                if res.returncode == 1:
                    warnings.append(f"{side} run {i + 1}: some tests failed (pytest exit 1).")
                for sid, (stat, value) in res.stats.items():
                    s = series.setdefault(sid, Series(sid, stat))
                    for lst in (s.base, s.head):
                        lst.extend([None] * (i - len(lst)))
                    (s.base if side == "BASE" else s.head).append(value)
            for s in series.values():
                for lst in (s.base, s.head):
                    lst.extend([None] * (i + 1 - len(lst)))
            pair_s = max(pair_s, time.perf_counter() - t0)
            if not series:
                raise AbError(
                    "the first runs measured nothing: select perf tests (marked "
                    "@pytest.mark.perf that use the `perf` fixture) in the pytest arguments."
                )
            verdicts = [judge(s, cfg) for s in series.values()]
            summary = _count(verdicts)
            progress.update(
                f"perfsuite ab: pair {i + 1}/{cfg.max_runs} done "
                f"({time.perf_counter() - started:.0f} s): {summary}"
            )
            if i + 1 in looks and i + 1 >= cfg.min_runs and all(v.decided for v in verdicts):
                stop_reason = "decided"
                break
        if all(v.verdict.startswith("only in") for v in verdicts):
            raise AbError(
                "BASE and HEAD measured no series in common, so nothing can be compared: "
                + "; ".join(f"{v.sid} {v.verdict}" for v in verdicts)
            )
    progress.update(f"perfsuite ab: stopped ({stop_reason}): {_count(verdicts)}", final=True)
    return {
        "schema": AB_SCHEMA,
        "schema_version": AB_SCHEMA_VERSION,
        "base": {"rev": cfg.base, "commit": revs["BASE"]},
        "head": {
            "rev": cfg.head or "(working tree)",
            "commit": revs.get("HEAD") or _git(repo, "rev-parse", "HEAD"),
        },
        "pytest_args": list(cfg.pytest_args),
        "rule": {
            "fail": str(cfg.fail) if cfg.stat else f"{cfg.fail.fraction * 100:g}%",
            "limit": 1.0 + cfg.fail.fraction,
            "level": cfg.level,
            "test": cfg.test,
            "min_runs": cfg.min_runs,
            "max_runs": cfg.max_runs,
            "budget_s": cfg.budget_s,
            "pinned": cfg.pin and not cfg.sequential,
            "side_by_side": not cfg.sequential,
        },
        "stopped": stop_reason,
        "seconds": time.perf_counter() - started,
        "runs": run_log,
        "warnings": sorted(set(warnings)),
        "measurements": [
            {**v.as_dict(), "base_runs_s": s.base, "head_runs_s": s.head}
            for v, s in zip(verdicts, series.values())
        ],
        "exit_code": exit_code(verdicts),
    }


def _count(verdicts: list[Verdict]) -> str:
    words = [v.verdict for v in verdicts]
    return ", ".join(f"{words.count(w)} {w}" for w in dict.fromkeys(words)) or "nothing measured"


def exit_code(verdicts: list[Verdict]) -> int:
    words = {v.verdict for v in verdicts if not v.verdict.startswith("only in")}
    if not words:
        return EXIT_ERROR  # nothing was measured by both revisions
    if "regression" in words:
        return EXIT_REGRESSION
    if "inconclusive" in words:
        return EXIT_INCONCLUSIVE
    return EXIT_OK
