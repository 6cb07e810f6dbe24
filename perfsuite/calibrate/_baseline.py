"""`perfsuite calibrate baseline`: the stored-baseline gate on a workload of known cost.

(Formerly `scripts/calibrate_baseline.py`, now a wrapper of this; same code, moved. Plain
`perfsuite calibrate` calibrates the same gate on the user's own tests, with the slowdown
injected by the engine; this scenario is the research calibration of
docs/calibration-baseline.md: several baseline sizes, re-baselining, the raw rule beside the
normalised one, and the load of the machine per session.)

Every trial is one real pytest session, `pytest --perf --perf-quick --perf-compare=NAME
--perf-fail=5%`, in a throwaway directory, on a workload of known cost: a pure-Python loop
and a chain of small matrix products, both made `PERF_CALIB_SLOWDOWN` times longer (an
environment variable read by the tests, so the code under test never changes). Scenarios are
`<slowdown>:<sessions in the baseline>`, e.g. `aa:1` (A/A against a 1-session baseline),
`x2:5` (2x slower against a 5-session baseline), `p10:1` (+10%). A session counts as failed
when pytest exits 1 with a REGRESSION line of the gate; its verdicts are read from its JSON.

Baselines are saved with `--perf-save` like a user would, and saved anew (under a fresh name)
every `--rebaseline` rounds, so a rate is not the luck of one baseline draw. The scenarios are
interleaved round by round, so drift of the machine hits them alike. Rates come with 95%
Wilson intervals; the results are rewritten atomically after every round.

    flock /tmp/calib.lock perfsuite calibrate baseline --out docs/data/calibrate_baseline.json
    # today's gate, for a "before" number (a checkout of the old code first on sys.path):
    flock /tmp/calib.lock perfsuite calibrate baseline --tree /tmp/gate-before \\
        --scenarios aa:1 --trials 10 --out /tmp/before.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import PerfUsageError
from .._machine import machine_fingerprint
from ._rates import Rate, progress, write_json


#: The `perfsuite calibrate` command's own entry of the namespace, not this scenario's option.
_NOT_OPTIONS = ("calibration",)


#: The perfsuite source tree the sessions import by default: the one this code comes from.
ROOT = Path(__file__).resolve().parents[2]
SLOWDOWNS = {"aa": 1.0, "p10": 1.10, "x2": 2.0}
#: A session is "quiet" when other processes used less than this many cores meanwhile.
QUIET_CORES = 0.25

# Two workloads of known cost, linear in their length: an interpreter-bound loop (its speed
# depends on where a process's objects land in memory, so it varies most between processes)
# and a chain of float64 matrix products (BLAS on one thread).
# Both workloads' tests, after a header that defines `X` and `W` (and imports `pytest`).
_BODY = """

SLOWDOWN = float(os.environ.get("PERF_CALIB_SLOWDOWN", "1"))


def loop(n):
    s = 0
    for i in range(n):
        s += i
    return s


def chain(n):
    x = X
    for _ in range(n):
        x = x @ W
    return x


@pytest.mark.perf
def test_loop(perf):
    n = int(round({loop_n} * SLOWDOWN))
    perf.measure(lambda: loop(n), name="loop")


@pytest.mark.perf
def test_chain(perf):
    n = int(round({chain_n} * SLOWDOWN))
    perf.measure(lambda: chain(n), name="chain")
"""

TESTS = (
    """\
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest

X = np.random.default_rng(0).standard_normal((64, 64))
W = np.random.default_rng(1).standard_normal((64, 64)) / 8
"""
    + _BODY
)


# The device case (`--workload torch-cuda`, scripts/h200_gate.py): a chain of bf16 matrix
# products on the GPU, timed by the torch-cuda instrument, beside the host loop. The device
# series must be judged on raw times (its time does not follow the host's speed).
TESTS_TORCH = (
    """\
import os

import pytest
import torch

X = torch.randn(2048, 2048, device="cuda", dtype=torch.bfloat16)
W = torch.randn(2048, 2048, device="cuda", dtype=torch.bfloat16) / 64
"""
    + _BODY
)
WORKLOADS = {"cpu": TESTS, "torch-cuda": TESTS_TORCH}


def _cpu() -> tuple[float, float]:
    """Seconds of busy and stolen CPU time of the whole machine so far (`/proc/stat`)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return math.nan, math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _children_cpu() -> float:
    import resource  # POSIX only: not at import, where every `perfsuite` command builds its parser

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def session(folder: Path, args: argparse.Namespace, slowdown: float, *extra: str) -> dict:
    """One pytest session; returns its exit code, its JSON document, its wall time, and the
    CPU that others used meanwhile (`foreign_cores`: busy CPU time not ours per second of
    wall time; `steal_cores`: time the hypervisor gave to other guests)."""
    out = folder / f"session-{time.monotonic_ns()}.json"
    tree = Path(args.tree).resolve()
    cmd = [
        sys.executable, "-m", "pytest", "-q", "-p", "perfsuite.plugin", "-p", "no:cacheprovider",
        "test_work.py", "--perf", "--perf-quick", f"--perf-json={out}", *extra,
    ]  # fmt: skip
    env = dict(
        os.environ,
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",  # faster start; the plugin is loaded with -p
        # The tree first; then what the caller had (e.g. `.gpu-site` on the device), made
        # absolute since the sessions run in a throwaway directory.
        PYTHONPATH=os.pathsep.join(
            [str(tree), str(tree / "src")]
            + [
                str(Path(p).resolve())
                for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                if p
            ]
        ),
        PERF_CALIB_SLOWDOWN=repr(slowdown),
        OPENBLAS_NUM_THREADS="1",
    )
    busy0, steal0 = _cpu()
    ours0 = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    busy1, steal1 = _cpu()
    foreign = max(0.0, (busy1 - busy0) - (_children_cpu() - ours0)) / seconds
    steal = (steal1 - steal0) / seconds
    text = proc.stdout + proc.stderr
    if proc.returncode not in (0, 1) or not out.exists():
        tail = " | ".join(x[:200] for x in text.strip().splitlines()[-4:])
        raise PerfUsageError(f"a calibration session exited {proc.returncode}: {tail}")
    doc = json.loads(out.read_text())
    out.unlink()
    return {
        "rc": proc.returncode,
        "doc": doc,
        "text": text,
        "seconds": seconds,
        "foreign_cores": foreign,
        "steal_cores": steal,
    }


def verdicts(doc: dict) -> dict[str, dict]:
    """`{series name: baseline entry}` of one session's document."""
    out = {}
    for m in doc["measurements"]:
        for b in m.get("baselines", [m["baseline"]] if "baseline" in m else []):
            out[b["series"].rsplit("::", 1)[-1]] = b
    return out


def summarise(trials: list[dict]) -> dict:
    out = {}
    for scenario in sorted({t["scenario"] for t in trials}):
        ts = [t for t in trials if t["scenario"] == scenario]
        failed = sum(t["failed"] for t in ts)
        low, high = Rate(failed, len(ts)).wilson95
        words = [v for t in ts for v in t["verdicts"].values()]
        ratios = sorted(r for t in ts for r in t["ratios"].values())
        quiet = [t for t in ts if t.get("foreign_cores", 0.0) < QUIET_CORES]
        q_failed = sum(t["failed"] for t in quiet)
        out[scenario] = {
            "sessions": len(ts),
            "failed": failed,
            "rate": failed / len(ts),
            "wilson95": [low, high],
            "quiet_sessions": len(quiet),
            "quiet_failed": q_failed,
            "quiet_wilson95": list(Rate(q_failed, len(quiet)).wilson95),
            "series_verdicts": {w: words.count(w) for w in sorted(set(words))},
            "ratio_min": ratios[0] if ratios else None,
            "ratio_max": ratios[-1] if ratios else None,
            **_raw_summary(ts),
        }
    return out


def _sd_log(values: list[float]) -> float | None:
    logs = [math.log(v) for v in values if v]
    if len(logs) < 2:
        return None
    mean = sum(logs) / len(logs)
    return math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))


def _raw_summary(ts: list[dict]) -> dict:
    """The same sessions by the raw rule (no reference), and the spread of the log ratios
    with and without the reference, per series: what the reference takes out."""
    raw_failed = sum(bool(t.get("raw_failed")) for t in ts)
    raw = sorted(r for t in ts for r in t.get("raw_ratios", {}).values() if r)
    names = sorted({k for t in ts for k in t["ratios"]})
    return {
        "raw_failed": raw_failed,
        "raw_wilson95": list(Rate(raw_failed, len(ts)).wilson95),
        "raw_ratio_min": raw[0] if raw else None,
        "raw_ratio_max": raw[-1] if raw else None,
        "sd_log_ratio": {
            k: _sd_log([t["ratios"][k] for t in ts if k in t["ratios"]]) for k in names
        },
        "sd_log_raw_ratio": {
            k: _sd_log([t.get("raw_ratios", {}).get(k) for t in ts]) for k in names
        },
    }


def parse_scenarios(text: str) -> list[tuple[str, float, int]]:
    """`--scenarios aa:1,x2:5`: (item, slowdown factor, sessions in the baseline) each."""
    out: list[tuple[str, float, int]] = []
    for item in (x.strip() for x in text.split(",")):
        slow, _, size = item.partition(":")
        seen = [o[0] for o in out]
        if slow not in SLOWDOWNS or not size.isdigit() or int(size) < 1 or item in seen:
            raise argparse.ArgumentTypeError(
                f"Could not parse value: {text!r}. Expected comma-separated SLOWDOWN:SESSIONS "
                f"items, each once, SLOWDOWN one of {list(SLOWDOWNS)} and SESSIONS a whole "
                "number >= 1, e.g. 'aa:1,x2:5'."
            )
        out.append((item, SLOWDOWNS[slow], int(size)))
    return out


def add_parser(sub: Any) -> None:
    from .._values import parse_path, parse_positive_int, parse_seconds

    p = sub.add_parser(
        "baseline",
        help="the --perf-compare gate on a known-cost workload: baseline sizes, raw rule",
        description="Interleaved rounds of real gated pytest sessions on a loop and a matrix "
        "chain made PERF_CALIB_SLOWDOWN times longer, against baselines of several sizes "
        "saved anew every --rebaseline rounds; per scenario the failed sessions with 95% "
        "Wilson intervals, the raw rule's beside (JSON). Formerly "
        "scripts/calibrate_baseline.py.",
    )
    p.add_argument(
        "--trials", type=parse_positive_int, default=100, help="A/A sessions per aa scenario (100)"
    )
    p.add_argument(
        "--detect-trials",
        type=parse_positive_int,
        default=25,
        help="sessions per slowdown scenario (25)",
    )
    p.add_argument(
        "--scenarios",
        type=parse_scenarios,
        default=parse_scenarios("aa:1,aa:5,x2:1,x2:5,p10:1,p10:5"),
        metavar="SLOWDOWN:SESSIONS,...",
        help=f"SLOWDOWN one of {', '.join(SLOWDOWNS)}. Default: aa:1,aa:5,x2:1,x2:5,p10:1,p10:5",
    )
    p.add_argument(
        "--fail", type=_fail_text, default="5%", help="--perf-fail of every compare (5%%)"
    )
    p.add_argument(
        "--rebaseline",
        type=parse_positive_int,
        default=25,
        help="new baselines every N rounds (25)",
    )
    p.add_argument(
        "--tree",
        type=parse_path,
        default=ROOT,
        help="perfsuite source tree the sessions import (this one)",
    )
    p.add_argument(
        "--loop-n", type=parse_positive_int, default=20000, help="loop length (about 0.5 ms)"
    )
    p.add_argument(
        "--chain-n", type=parse_positive_int, default=40, help="matrix products per call (40)"
    )
    p.add_argument(
        "--time-limit", type=parse_seconds, default=3600.0, help="stop after this many s (3600)"
    )
    p.add_argument(
        "--workload", choices=sorted(WORKLOADS), default="cpu", help="cpu or torch-cuda (cpu)"
    )
    p.add_argument("--quiet", action="store_true", help="no summary JSON on stdout")
    p.add_argument(
        "--out", type=parse_path, required=True, help="the results JSON (rewritten every round)"
    )


def _fail_text(text: str) -> str:
    """`--fail`: checked as `--perf-fail` checks it, passed on as written."""
    from .._values import parse_fail

    parse_fail(text)
    return text


def run(args: argparse.Namespace, write: Callable[[str], None]) -> int:
    scenarios = [
        (item, slowdown, size, args.trials if item.startswith("aa:") else args.detect_trials)
        for item, slowdown, size in args.scenarios
    ]
    folder = Path(tempfile.mkdtemp(prefix="calibrate-baseline-"))
    try:
        return _rounds(args, scenarios, folder, write)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the baselines and sessions of this run


def _rounds(
    args: argparse.Namespace,
    scenarios: list[tuple[str, float, int, int]],
    folder: Path,
    write: Callable[[str], None],
) -> int:
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_work.py").write_text(
        WORKLOADS[args.workload]
        .replace("{loop_n}", str(args.loop_n))
        .replace("{chain_n}", str(args.chain_n))
    )
    started = time.monotonic()
    trials: list[dict] = []
    baselines: dict[int, str] = {}
    rounds = max(n for *_, n in scenarios)
    for r in range(rounds):
        if time.monotonic() - started > args.time_limit:
            progress(f"[calibrate baseline] time limit reached after {r} rounds")
            break
        if r % args.rebaseline == 0:
            # Fresh baselines: `--perf-save=NAME` once per session the baseline is to hold.
            for size in sorted({s for _, _, s, _ in scenarios}):
                name = f"b{size}-{r // args.rebaseline}"
                for _ in range(size):
                    saved = session(folder, args, 1.0, f"--perf-save={name}")
                    if saved["rc"] != 0:
                        raise PerfUsageError(
                            f"a baseline session failed (exit {saved['rc']}): "
                            + " | ".join(saved["text"].strip().splitlines()[-4:])
                        )
                baselines[size] = name
        for item, slowdown, size, n in scenarios:
            if r >= n:
                continue
            res = session(
                folder,
                args,
                slowdown,
                f"--perf-compare={baselines[size]}",
                f"--perf-fail={args.fail}",
            )
            vs = verdicts(res["doc"])
            failed = res["rc"] == 1 and "REGRESSION" in res["text"]
            trials.append(
                {
                    "scenario": item,
                    "round": r,
                    "baseline": baselines[size],
                    "failed": failed,
                    "verdicts": {k: v["verdict"] for k, v in vs.items()},
                    "ratios": {k: v["ratio"] for k, v in vs.items()},
                    "bands": {k: v.get("band") for k, v in vs.items()},
                    # The same session judged by the raw rule (no machine-speed reference:
                    # the gate of runs 2-4), and the reference's own ratio.
                    "raw_ratios": {k: v.get("raw_ratio") for k, v in vs.items()},
                    "raw_verdicts": {k: v.get("raw_verdict") for k, v in vs.items()},
                    "raw_bands": {k: v.get("raw_band") for k, v in vs.items()},
                    "reference_ratios": {k: v.get("reference_ratio") for k, v in vs.items()},
                    "normalised": {k: v.get("normalised") for k, v in vs.items()},
                    "cpu_shares": {
                        m["name"]: (m.get("reference") or {}).get("cpu_share")
                        for m in res["doc"]["measurements"]
                    },
                    "raw_failed": any(v.get("raw_verdict") == "regression" for v in vs.values()),
                    "seconds": res["seconds"],
                    "foreign_cores": res["foreign_cores"],
                    "steal_cores": res["steal_cores"],
                }
            )
            progress(
                f"[calibrate baseline] round {r + 1}/{rounds} {item}: {'FAIL' if failed else 'ok  '} "
                f"(others {res['foreign_cores']:.2f} cores, steal {res['steal_cores']:.2f}) "
                + " ".join(
                    f"{k} {v['ratio']:.3f}x (raw {v.get('raw_ratio') or 0:.3f}x) {v['verdict']}"
                    for k, v in vs.items()
                )
            )
        report = {
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": [sys.executable, *sys.argv],
            "args": {k: str(v) for k, v in vars(args).items() if k not in _NOT_OPTIONS},
            "machine": machine_fingerprint() | {"python": platform.python_version()},
            "seconds": time.monotonic() - started,
            "summary": summarise(trials),
            "trials": trials,
        }
        write_json(args.out, report)
    if not args.quiet:
        write(json.dumps(summarise(trials), indent=1))
    return 0
