"""`perfsuite ab`: statistics, the interleaving loop (with a fake runner), the CLI end to end."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _ab_repo import PERF_TEST, make_repo
from _ab_repo import git as _git

from perfsuite import _stats, ab
from perfsuite._options import FailExpr
from perfsuite._results import run_statistics
from perfsuite.ab import _loop
from perfsuite.cli import main


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


# --------------------------------------------------------------------------- statistics


def test_signed_rank_interval_needs_eight_values_at_99_percent() -> None:
    x = [0.01 * i for i in range(1, 8)]
    assert _stats.signed_rank_interval(x, level=0.99)[1:] == (-math.inf, math.inf)
    x = [0.01 * i for i in range(1, 9)]
    est, low, high = _stats.signed_rank_interval(x, level=0.99)
    assert (low, high) == (pytest.approx(0.01), pytest.approx(0.08))  # min and max
    assert est == pytest.approx(0.045)


def test_signed_rank_interval_covers_at_its_level() -> None:
    rng = np.random.default_rng(1)
    covered = sum(
        low <= 0.0 <= high
        for _, low, high in (
            _stats.signed_rank_interval(rng.standard_t(3, size=12), level=0.9) for _ in range(1000)
        )
    )
    assert 0.87 <= covered / 1000 <= 0.95


def test_signed_rank_interval_is_narrower_than_the_sign_test() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0.05, 0.02, size=20)
    _, lo_w, hi_w = _stats.paired_interval(x, level=0.99, test="signed-rank")
    _, lo_s, hi_s = _stats.paired_interval(x, level=0.99, test="sign")
    assert hi_w - lo_w < hi_s - lo_s


def test_run_statistics_takes_the_median_of_every_kind() -> None:
    doc = {
        "measurements": [
            {
                "kind": "measure",
                "id": "t::m",
                "test": "t",
                "name": "m",
                "candidate": {"samples_s": [3.0, 1.0, 2.0]},
            },
            {
                "kind": "steps",
                "id": "t::s",
                "test": "t",
                "name": "s",
                "steps": {"samples_s": [3.0, 1.0, 2.0]},
            },
            {
                "kind": "compare",
                "id": "t::a+b",
                "test": "t",
                "name": "a+b",
                "comparison": {"candidates": [{"name": "a", "samples_s": [5.0, 4.0]}]},
            },
            {"kind": "record", "id": "t::r", "test": "t", "name": "r", "value": 1.0},
        ]
    }
    assert run_statistics(doc, None) == {
        "t::m": ("median", 2.0),
        "t::s": ("median", 2.0),
        "t::a": ("median", 4.5),
    }
    assert run_statistics(doc, "mean")["t::m"] == ("mean", 2.0)
    assert run_statistics(doc, "min")["t::a"] == ("min", 4.0)


# --------------------------------------------------------------------------- the loop


def _fake_runner(head_factor: float, noise: float, calls: list[str], seed: int = 0):
    rng = np.random.default_rng(seed)

    def runner(cfg, side, index, tree, out):
        calls.append(side)
        factor = head_factor if side == "HEAD" else 1.0
        value = 1e-3 * factor * math.exp(rng.normal(0.0, noise))
        stats = {"t.py::test::x": ("min", value)}
        if side == "HEAD":
            stats["t.py::test_new::y"] = ("min", 1e-3)
        return ab.RunResult(side, index, 0.01, 0, stats)

    return runner


def _cfg(repo: Path, **kw) -> ab.AbConfig:
    base = {"base": "HEAD~1", "head": "HEAD", "pytest_args": (), "fail": FailExpr("median", 0.05)}
    return ab.AbConfig(**{**base, "repo": repo, **kw})


@pytest.mark.parametrize(
    ("factor", "noise", "verdict", "code"),
    [
        (1.20, 0.01, "regression", 1),
        (1.00, 0.005, "no regression", 0),
        (1.05, 0.10, "inconclusive", 3),
    ],
)
def test_loop_verdicts_and_exit_codes(repo, factor, noise, verdict, code) -> None:
    calls: list[str] = []
    doc = ab.run_ab(
        _cfg(repo, max_runs=12), runner=_fake_runner(factor, noise, calls, seed=int(factor * 100))
    )
    m = {x["series"]: x for x in doc["measurements"]}
    assert m["t.py::test::x"]["verdict"] == verdict
    assert m["t.py::test_new::y"]["verdict"] == "only in HEAD"  # does not change the exit code
    assert doc["exit_code"] == code
    # Interleaved, the order inside a pair alternating: B H, H B, B H, ...
    assert calls[:6] == ["BASE", "HEAD", "HEAD", "BASE", "BASE", "HEAD"]
    pairs = m["t.py::test::x"]["pairs"]
    assert len(calls) == 2 * pairs
    assert doc["stopped"] == ("decided" if code in (0, 1) else "max-runs")
    if code in (0, 1):
        assert pairs == 8  # decided at the first look
    assert _git(repo, "worktree", "list").count("\n") == 0  # worktrees removed


def test_jobs_run_pairs_at_once_and_keep_their_order(repo, monkeypatch) -> None:
    """`--jobs 2`: pairs 2k and 2k+1 overlap in time, results land in pair order, and the
    stopping rule still looks at the data only at its planned pair counts."""
    import threading
    import time

    spans: dict[int, tuple[float, float]] = {}
    rng = np.random.default_rng(3)
    lock = threading.Lock()

    def fake_pair(cfg, index, order, trees, out):
        start = time.perf_counter()
        time.sleep(0.05 if index % 2 else 0.1)  # the second of a batch finishes first
        with lock:
            values = {side: 1e-3 * (1.2 if side == "HEAD" else 1.0) for side in order}
            noise = math.exp(rng.normal(0.0, 0.01))
        spans[index] = (start, time.perf_counter())
        return [
            ab.RunResult(side, index, 0.05, 0, {"t.py::test::x": ("median", values[side] * noise)})
            for side in order
        ]

    monkeypatch.setattr(_loop, "run_pair", fake_pair)
    doc = ab.run_ab(_cfg(repo, min_runs=8, max_runs=40, jobs=2))
    assert doc["rule"]["jobs"] == 2
    assert doc["stopped"] == "decided"
    (m,) = doc["measurements"]
    assert m["verdict"] == "regression"
    assert m["pairs"] == 8  # decided at the first look, after four batches of two
    assert [r["pair"] for r in doc["runs"]] == [i // 2 for i in range(16)]
    assert [r["side"] for r in doc["runs"][:4]] == ["BASE", "HEAD", "HEAD", "BASE"]
    for first in range(0, 8, 2):  # the two pairs of a batch ran at once
        (a0, a1), (b0, b1) = spans[first], spans[first + 1]
        assert b0 < a1
        assert a0 < b1
    assert spans[1][1] <= spans[2][0]  # batches one after the other


def test_jobs_are_one_at_a_time_with_a_test_runner(repo) -> None:
    calls: list[str] = []
    doc = ab.run_ab(_cfg(repo, max_runs=8, jobs=2), runner=_fake_runner(1.2, 0.01, calls))
    assert calls[:4] == ["BASE", "HEAD", "HEAD", "BASE"]
    assert doc["stopped"] == "decided"


def test_loop_refuses_when_nothing_is_common(repo) -> None:
    def runner(cfg, side, index, tree, out):
        return ab.RunResult(side, index, 0.01, 0, {f"{side}::x": ("min", 1.0)})

    with pytest.raises(ab.AbError, match="measured no series in common"):
        ab.run_ab(_cfg(repo, min_runs=2, max_runs=2), runner=runner)


def test_bad_revision_names_the_argument(repo, capsys) -> None:
    assert main(["ab", "no-such-rev", "--repo", str(repo), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "`BASE`='no-such-rev' is not a commit of the repository" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail", "5"], "argument --fail: Could not parse value: '5'"),
        (["--min-runs", "0"], "argument --min-runs: Could not parse value: '0'"),
        (
            ["--min-runs", "9", "--max-runs", "8"],
            "`max_runs` (--max-runs) = 8 must be at least `min_runs` (--min-runs) = 9",
        ),
        (["--level", "1.5"], "argument --level: Could not parse value: '1.5'"),
        (["--jobs", "0"], "argument --jobs/-j: Could not parse value: '0'"),
        (["--jobs", "2", "--sequential"], "`jobs` (--jobs) = 2: pairs run at once need a CPU each"),
        (["--jobs", "2", "--no-pin"], "without `--sequential` or `--no-pin`"),
        (["--jobs", "10000"], "must be at most the"),
    ],
)
def test_bad_options_name_the_argument_and_rule(repo, capsys, args, message) -> None:
    assert main(["ab", "HEAD~1", "--repo", str(repo), *args]) == 2
    assert message in capsys.readouterr().err


def test_not_a_repository_is_an_error(tmp_path, capsys) -> None:
    assert main(["ab", "HEAD~1", "--repo", str(tmp_path), "--quiet"]) == 2
    assert "git rev-parse --show-toplevel failed" in capsys.readouterr().err


# --------------------------------------------------------------------------- end to end


def test_end_to_end_working_tree_as_head(repo, tmp_path, capsys, monkeypatch) -> None:
    """Real processes: BASE = HEAD~1 in a worktree, HEAD = the uncommitted working tree."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # exercises `-p perfsuite.plugin`
    summary = tmp_path / "summary.md"
    summary.write_text("previous step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (repo / "test_sum.py").write_text(
        PERF_TEST.format(n=200) + "\n\n@pytest.mark.perf\ndef test_new(perf):\n"
        "    perf.measure(work, name='new')\n"
    )
    out = tmp_path / "ab.json"
    code = main(
        ["ab", "HEAD~1", "--repo", str(repo), "--min-runs", "2", "--max-runs", "2",
         "--level", "0.5", "--json", str(out), "--markdown", "--", "--perf-quick"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code in (0, 1, 3), captured.err
    doc = json.loads(out.read_text())
    assert doc["exit_code"] == code
    assert doc["head"]["rev"] == "(working tree)"
    assert [r["side"] for r in doc["runs"]] == ["BASE", "HEAD", "HEAD", "BASE"]
    m = {x["series"]: x for x in doc["measurements"]}
    assert m["test_sum.py::test_new::new"]["verdict"] == "only in HEAD"
    assert doc["rule"]["pinned"] is True  # both runs of a pair on one CPU, taking turns
    sum_ = m["test_sum.py::test_sum::sum"]
    assert sum_["pairs"] == 2
    assert sum_["statistic"] == "median"
    assert sum_["low"] <= sum_["ratio"] <= sum_["high"]
    assert "perfsuite ab: pair 2/2 done" in captured.err  # the progress display
    assert "test_sum.py::test_sum::sum" in captured.out
    assert "rule: regression if the 50% interval of HEAD/BASE" in captured.out
    md = summary.read_text()
    assert md.startswith("previous step\n### perfsuite ab: ")
    assert "| `test_sum.py::test_sum::sum` | median |" in md
    assert _git(repo, "worktree", "list").count("\n") == 0
    assert not (repo / ".pytest_cache").exists()


def test_a_crashing_run_is_an_error_with_its_output(repo, capsys, monkeypatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert main(["ab", "HEAD~1", "HEAD", "--repo", str(repo), "--quiet", "--", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"(BASE|HEAD) run 1 in ", err)  # both sides start together
    assert "exited with 4 (pytest: " in err
    assert "--bogus" in err
    assert _git(repo, "worktree", "list").count("\n") == 0


def test_help_lists_the_commands(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("ab", "report", "export-asv"):
        assert command in out
    assert main(["ab", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "0 no regression, 1 regression, 2 error, 3 inconclusive" in text


def test_console_script_runs_as_a_module() -> None:
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "perfsuite.cli", "report", "missing.json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "perfsuite: error: `RESULTS.json`: missing.json: no such results file." in proc.stderr


def test_sequential_runs_the_sides_one_after_the_other(repo, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    out = tmp_path / "ab.json"
    code = main(
        ["ab", "HEAD~1", "HEAD", "--repo", str(repo), "--min-runs", "2", "--max-runs", "2",
         "--level", "0.5", "--sequential", "--quiet", "--json", str(out), "--", "--perf-quick"]
    )  # fmt: skip
    assert code in (0, 1, 3)
    doc = json.loads(out.read_text())
    assert doc["rule"]["side_by_side"] is False
    assert doc["rule"]["pinned"] is False
    assert [r["side"] for r in doc["runs"]] == ["BASE", "HEAD", "HEAD", "BASE"]


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs two CPUs (one per pair)",
)
def test_jobs_end_to_end_pins_each_pair_to_its_own_cpu(repo, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    out = tmp_path / "ab.json"
    code = main(
        ["ab", "HEAD~1", "HEAD", "--repo", str(repo), "--min-runs", "4", "--max-runs", "4",
         "--level", "0.5", "--jobs", "2", "--quiet", "--json", str(out), "--", "--perf-quick"]
    )  # fmt: skip
    assert code in (0, 1, 3)
    doc = json.loads(out.read_text())
    assert doc["rule"]["jobs"] == 2
    assert [r["pair"] for r in doc["runs"]] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert {r["returncode"] for r in doc["runs"]} == {0}
    (m,) = doc["measurements"]
    assert m["pairs"] == 4


@pytest.mark.parametrize("cpus", [1, 2, 3, 4, 8])
def test_cpu_rotation_balances_who_leads_and_separates_concurrent_pairs(cpus) -> None:
    from perfsuite.ab._runs import cpu_slot

    n = 8 * cpus
    slots = [cpu_slot(i, cpus) for i in range(n)]
    for cpu in range(cpus):  # every CPU hosts as many BASE-first (even) as HEAD-first pairs
        leads = [i % 2 for i in range(n) if slots[i] == cpu]
        assert len(leads) == 8
        assert cpus == 1 or sum(leads) == 4
    for jobs in range(1, cpus + 1):  # the pairs of one batch never share a CPU
        for start in range(0, n - jobs, jobs):
            batch = slots[start : start + jobs]
            assert len(set(batch)) == len(batch)
