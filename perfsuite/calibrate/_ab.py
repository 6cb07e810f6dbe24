"""`perfsuite calibrate ab`: false-alarm and detection rates of `perfsuite ab` on a workload of
known cost.

(Formerly `scripts/calibrate_ab.py`, now a wrapper of this; same code, moved.)

A throwaway git repository holds a pure-Python loop measured by three perf tests. BASE
runs the loop N times in all three; HEAD adds a known fraction of work: 0% (`aa`, an A/A
comparison), +3% (`p3`) and +10% (`p10`). Every trial is one `perfsuite ab BASE HEAD`, so
one trial gives one verdict per scenario; the trials are independent (the scenarios inside
one trial share its processes). For comparison, each trial also runs pytest-benchmark once
per revision and applies its `--benchmark-compare-fail=mean:5%` rule to the same tests.

Rates come with 95% Wilson intervals. Results are rewritten (atomically) after every trial,
so an interrupted run keeps what it measured.

    perfsuite calibrate ab --trials 100            # the full calibration
    perfsuite calibrate ab --trials 100 --time-limit 1500   # what fits in 25 min
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import PerfUsageError
from .._machine import git, machine_fingerprint
from ._rates import Deadline, Rate, markdown_table, progress, write_json, write_text


SCENARIOS = {"aa": 0.0, "p3": 0.03, "p10": 0.10}

# Two workloads of exactly known cost, each a `work(n)` whose cost is linear in `n`. `python`
# is interpreter-bound (a pure-Python loop: its speed depends on where a process's objects land
# in memory, so it varies most from process to process); `matmul` is a chain of small float64
# matrix products, the kind of numeric kernel perfsuite's users time (BLAS kept to one thread:
# a pair's two runs share one CPU).
WORKLOADS = {
    "python": """\
def work(n):
    s = 0
    for i in range(n):
        s += i
    return s
""",
    "matmul": """\
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy starts its BLAS threads

import numpy as np

rng = np.random.default_rng(0)
A = rng.standard_normal((64, 64))
B = rng.standard_normal((64, 64)) / 8


def work(n):
    x = A
    for _ in range(n):
        x = x @ B
    return x
""",
}

# The same tests time either workload: `perf.measure` for perfsuite, `benchmark` for
# pytest-benchmark.
TESTS = """\
import pytest

EXTRA = {extra!r}
N = {n}


@pytest.mark.perf
@pytest.mark.parametrize("case", {cases!r})
def test_work(perf, case):
    n = int(round(N * (1 + EXTRA[case])))
    perf.measure(lambda: work(n), name=case)


@pytest.mark.parametrize("case", {cases!r})
def test_bench(benchmark, case):
    n = int(round(N * (1 + EXTRA[case])))
    benchmark(work, n)
"""
#: Default loop length per workload: about 0.45 ms (python) and 1.4 ms (matmul) per call.
DEFAULT_N = {"python": 20000, "matmul": 100}


def make_repo(folder: Path, n: int, workload: str = "python") -> Path:
    repo = folder / "workload"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "calibrate@perfsuite.invalid")
    git(repo, "config", "user.name", "calibrate")
    cases = list(SCENARIOS)
    (repo / "test_work.py").write_text(
        WORKLOADS[workload] + "\n\n" + TESTS.format(extra={c: 0.0 for c in cases}, n=n, cases=cases)
    )
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    git(repo, "tag", "base")
    (repo / "test_work.py").write_text(
        WORKLOADS[workload] + "\n\n" + TESTS.format(extra=SCENARIOS, n=n, cases=cases)
    )
    git(repo, "commit", "-qam", "head: more work")
    git(repo, "tag", "head")
    return repo


def run_ab(repo: Path, out: Path, args: argparse.Namespace, cases: list[str]) -> dict:
    cmd = [
        sys.executable, "-m", "perfsuite.cli", "ab", "base", "head", "--repo", str(repo),
        "--quiet", "--json", str(out), "--fail", args.fail, "--min-runs", str(args.min_runs),
        "--max-runs", str(args.max_runs), "--budget", str(args.budget),
        "--level", str(args.level), "--jobs", str(args.jobs), "--", "--perf-quick", *args.perf_args.split(), "test_work.py",
        "-k", f"not test_bench and ({' or '.join(cases)})",
    ]  # fmt: skip
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")  # faster start per process
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode == 2 or not out.exists():
        tail = " | ".join(proc.stderr.strip().splitlines()[-4:])
        raise PerfUsageError(f"a calibration's `perfsuite ab` exited {proc.returncode}: {tail}")
    doc = json.loads(out.read_text())
    return {m["series"].rsplit("::", 1)[-1]: m for m in doc["measurements"]} | {
        "_seconds": doc["seconds"],
        "_pairs": max(m["pairs"] for m in doc["measurements"]),
    }


def run_benchmark(
    trees: dict[str, Path], folder: Path, args: argparse.Namespace, cases: list[str]
) -> dict:
    """pytest-benchmark as its users gate with it: save BASE, then HEAD with
    `--benchmark-compare=0001 --benchmark-compare-fail=mean:5%`; a test fails the rule when
    pytest-benchmark lists it under "Performance has regressed"."""
    storage = Path(tempfile.mkdtemp(prefix="bench-", dir=folder))
    means, failed = {}, set()
    for side in ("base", "head"):
        out = folder / f"bench-{side}.json"
        cmd = [
            sys.executable, "-m", "pytest", "-q", "-p", "pytest_benchmark.plugin",
            "-p", "no:cacheprovider", "test_work.py", "-k", f"test_bench and ({' or '.join(cases)})", "--benchmark-only",
            f"--benchmark-json={out}", f"--benchmark-max-time={args.benchmark_max_time}",
            f"--benchmark-storage=file://{storage}",
        ]  # fmt: skip
        if side == "base":
            cmd.append("--benchmark-save=base")
        else:
            cmd += ["--benchmark-compare=0001", "--benchmark-compare-fail=mean:5%"]
        env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
        proc = subprocess.run(cmd, cwd=trees[side], capture_output=True, text=True, env=env)
        text = proc.stdout + proc.stderr
        if proc.returncode != 0 and "Performance has regressed" not in text:
            tail = " | ".join(text.strip().splitlines()[-4:])
            raise PerfUsageError(f"a calibration's pytest-benchmark session failed: {tail}")
        if side == "head":
            # "\ttest_bench[p10] (0001_base) - Field 'mean' has failed PercentageRegressionCheck"
            failed = set(re.findall(r"test_bench\[(\w+)\] \(0001_base\) - Field 'mean'", text))
        doc = json.loads(out.read_text())
        means[side] = {b["param"]: b["stats"]["mean"] for b in doc["benchmarks"]}
    return {
        case: {"ratio": means["head"][case] / means["base"][case], "fail": case in failed}
        for case in cases
    }


def summarise(trials: list[dict], args: argparse.Namespace) -> dict:
    out = {}
    for case, extra in SCENARIOS.items():
        verdicts = [t["ab"][case]["verdict"] for t in trials if case in t["ab"]]
        if not verdicts:
            continue
        alarms = sum(v == "regression" for v in verdicts)
        low, high = Rate(alarms, len(verdicts)).wilson95
        bench = [t["benchmark"][case]["fail"] for t in trials if case in t.get("benchmark", {})]
        b_low, b_high = Rate(sum(bench), len(bench)).wilson95
        out[case] = {
            "extra": extra,
            "trials": len(verdicts),
            "regression": alarms,
            "rate": alarms / len(verdicts) if verdicts else None,
            "wilson95": [low, high],
            "verdicts": {v: verdicts.count(v) for v in sorted(set(verdicts))},
            "benchmark_trials": len(bench),
            "benchmark_fail": sum(bench),
            "benchmark_rate": sum(bench) / len(bench) if bench else None,
            "benchmark_wilson95": [b_low, b_high],
        }
    return out


KEPT = ("verdict", "ratio", "low", "high", "pairs")
GOALS = {"aa": "false alarms <= 1%", "p3": "caught >= 80%", "p10": "caught >= 99%"}


def markdown(doc: dict) -> str:
    s = doc["settings"]
    secs = [t["ab_seconds"] for t in doc["trials"]]
    mean_s = sum(secs) / len(secs) if secs else float("nan")
    header = [
        "scenario",
        "trials",
        "`perfsuite ab` regression",
        "rate (95% Wilson)",
        "goal",
        "pytest-benchmark `mean:5%` fail",
        "rate (95% Wilson)",
    ]
    rows = [
        [
            f"{case} (+{r['extra']:.0%})",
            r["trials"],
            r["regression"],
            Rate(r["regression"], r["trials"]).cell(),
            GOALS[case],
            f"{r['benchmark_fail']}/{r['benchmark_trials']}",
            Rate(r["benchmark_fail"], r["benchmark_trials"]).cell(),
        ]
        for case, r in doc["summary"].items()
    ]
    lines = markdown_table(header, rows)
    lines += [
        "",
        f"Settings: `perfsuite ab --fail {s['fail']} --min-runs {s['min_runs']} --max-runs "
        f"{s['max_runs']} --budget {s['budget']:g} --level {s['level']} --jobs {s.get('jobs', 1)}` (signed-rank; the two runs "
        f"of a pair side by side, taking turns on one CPU), `-- --perf-quick "
        f"{s.get('perf_args', '')}`, workload {s.get('workload', 'python')} N={s['n']}. "
        f"Mean wall time per trial ({'one scenario each' if s.get('one_per_trial') else 'its scenarios at once'}): {mean_s:.0f} s. "
        f"Machine: {doc['machine']['cpu_model']}, {doc['machine']['cores']} cores, load average "
        f"at start {doc['load_at_start']}. Started {doc['started']}, {len(doc['trials'])} trials.",
    ]
    return "\n".join(lines) + "\n"


def add_parser(sub: Any) -> None:
    from .._values import parse_level, parse_path, parse_positive_int, parse_seconds, word_list

    p = sub.add_parser(
        "ab",
        help="false alarms and detection of `perfsuite ab` (+0%%, +3%%, +10%% work), beside "
        "pytest-benchmark's compare rule",
        description="Trials of `perfsuite ab base head` on a throwaway repository whose HEAD "
        "adds 0%, 3% and 10% work; regressions per scenario with 95% Wilson intervals, and "
        "pytest-benchmark's `--benchmark-compare-fail=mean:5%` on the same tests (Markdown, "
        "JSON after every trial). Formerly scripts/calibrate_ab.py.",
    )
    p.add_argument("--trials", type=parse_positive_int, default=100, help="trials to run (100)")
    p.add_argument(
        "--time-limit",
        type=parse_seconds,
        default=None,
        metavar="SECONDS",
        help="start no trial after this many seconds. Default: none",
    )
    p.add_argument("--fail", type=_fail_text, default="1%", help="--fail of perfsuite ab (1%%)")
    p.add_argument("--min-runs", type=parse_positive_int, default=8, help="--min-runs (8)")
    p.add_argument("--max-runs", type=parse_positive_int, default=12, help="--max-runs (12)")
    p.add_argument(
        "--budget", type=parse_seconds, default=60.0, help="--budget of perfsuite ab per trial (60)"
    )
    p.add_argument("--level", type=parse_level, default=0.99, help="--level (0.99)")
    p.add_argument(
        "--workload",
        choices=sorted(WORKLOADS),
        default="python",
        help="what the tests time (python or matmul). Default: python",
    )
    p.add_argument(
        "--n",
        type=parse_positive_int,
        default=None,
        help="loop length of the workload. Default: 20000 (python), 100 (matmul)",
    )
    p.add_argument("--jobs", type=parse_positive_int, default=1, help="--jobs of perfsuite ab (1)")
    p.add_argument(
        "--perf-args",
        default="",
        help="more pytest options for every run, e.g. '--perf-budget 0.05' (shorter runs, more "
        "pairs). Default: none",
    )
    p.add_argument(
        "--scenarios",
        type=word_list(list(SCENARIOS)),
        default=list(SCENARIOS),
        help=f"comma-separated scenarios to measure. Default: {','.join(SCENARIOS)}",
    )
    p.add_argument(
        "--one-per-trial",
        action="store_true",
        help="measure one scenario per trial, in turn, so each verdict has the whole --budget "
        "(default: all scenarios share each trial's processes and budget)",
    )
    p.add_argument(
        "--benchmark-max-time",
        type=parse_seconds,
        default=0.5,
        help="--benchmark-max-time of pytest-benchmark (0.5)",
    )
    p.add_argument("--no-benchmark", action="store_true", help="skip pytest-benchmark")
    p.add_argument(
        "--out",
        type=parse_path,
        default=Path(".perf") / "calibrate_ab.json",
        help="the results JSON, rewritten after every trial. Default: .perf/calibrate_ab.json",
    )
    p.add_argument("--markdown", type=parse_path, default=None, help="also write the table here")


def _fail_text(text: str) -> str:
    """`--fail`: checked as `perfsuite ab --fail` checks it, passed on as written."""
    from .._values import parse_fail

    parse_fail(text)
    return text


#: The `perfsuite calibrate` command's own entry of the namespace, not this scenario's option.
_NOT_OPTIONS = ("calibration",)


def run(args: argparse.Namespace, write: Callable[[str], None]) -> int:
    if args.n is None:
        args.n = DEFAULT_N[args.workload]
    scenarios = list(args.scenarios)
    deadline = Deadline(args.time_limit)
    settings = {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS}
    settings["scenarios"] = ",".join(scenarios)  # as the script recorded it: one string
    doc: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_fingerprint(),
        "host": platform.node(),
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.items()},
        "trials": [],
    }
    with tempfile.TemporaryDirectory(prefix="calibrate-ab-") as tmp_name:
        tmp = Path(tmp_name)
        repo = make_repo(tmp, args.n, args.workload)
        trees = {}
        if not args.no_benchmark:
            for side in ("base", "head"):
                trees[side] = tmp / f"tree-{side}"
                git(repo, "worktree", "add", "--detach", "-q", str(trees[side]), side)
        for i in range(args.trials):
            if deadline.passed():
                progress(f"[calibrate ab] time limit reached after {i} trials")
                break
            t0 = time.monotonic()
            cases = [scenarios[i % len(scenarios)]] if args.one_per_trial else scenarios
            ab = run_ab(repo, tmp / f"ab-{i}.json", args, cases)
            trial = {
                "ab_seconds": ab.pop("_seconds"),
                "pairs": ab.pop("_pairs"),
                "ab": {
                    c: {k: m[k] for k in (*KEPT, "base_runs_s", "head_runs_s")}
                    for c, m in ab.items()
                },
                "load": [round(x, 2) for x in os.getloadavg()],
            }
            if not args.no_benchmark:
                trial["benchmark"] = run_benchmark(trees, tmp, args, cases)
            trial["seconds"] = time.monotonic() - t0
            doc["trials"].append(trial)
            doc["summary"] = summarise(doc["trials"], args)
            write_json(args.out, doc)
            short = {c: (m["verdict"], round(m["ratio"], 3)) for c, m in trial["ab"].items()}
            bench = {c: b["fail"] for c, b in trial.get("benchmark", {}).items()}
            progress(
                f"[calibrate ab] trial {i + 1}/{args.trials}: {trial['seconds']:.0f} s "
                f"ab={short} bench_fail={bench}"
            )
    if doc["trials"]:
        text = markdown(doc)
        write(text.rstrip("\n"))
        write_text(args.markdown, text)
    return 0
