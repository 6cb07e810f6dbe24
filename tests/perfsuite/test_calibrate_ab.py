"""`perfsuite calibrate ab` (formerly `scripts/calibrate_ab.py`): its workloads are real perf
tests with the known extra work.

The calibration itself takes an hour and is not part of the tests (docs/calibration-ab.md);
this checks that what it measures is what it says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perfsuite.calibrate import _ab


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def calibrate():
    return _ab


@pytest.mark.parametrize("workload", ["python", "matmul"])
def test_workload_repository_has_base_and_head(calibrate, workload, tmp_path) -> None:
    repo = calibrate.make_repo(tmp_path, 10, workload)
    out = tmp_path / "head.json"
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "perfsuite.plugin", "-p", "no:cacheprovider",
         "--perf", "--perf-quick", "--perf-budget", "0.01", f"--perf-json={out}", "test_work.py",
         "-k", "not test_bench"],
        cwd=repo, env=env, capture_output=True, text=True,
    )  # fmt: skip
    # `-k "not test_bench"` (the module is test_work.py): with plugin autoload off,
    # pytest-benchmark is not active, so perfsuite's own `benchmark` fixture would measure
    # the pytest-benchmark side (`test_bench`) too.
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = {m["id"].rsplit("::", 1)[-1] for m in json.loads(out.read_text())["measurements"]}
    assert names == set(calibrate.SCENARIOS)
    # HEAD adds exactly the scenario's fraction of work; BASE adds none.
    ns = {}
    for rev in ("base", "head"):
        text = calibrate.git(repo, "show", f"{rev}:test_work.py")
        scope: dict = {}
        exec(compile(text, "test_work.py", "exec"), scope)  # noqa: S102  (our own template)
        ns[rev] = scope["EXTRA"]
    assert ns["base"] == dict.fromkeys(calibrate.SCENARIOS, 0.0)
    assert ns["head"] == calibrate.SCENARIOS


def test_summary_counts_each_scenario_over_the_trials_that_measured_it(calibrate) -> None:
    # `--one-per-trial`: every trial measures one scenario, so each has its own trial count.
    def trial(case, verdict, bench_fail):
        return {
            "ab": {case: {"verdict": verdict}},
            "benchmark": {case: {"ratio": 1.0, "fail": bench_fail}},
        }

    trials = [
        trial("p3", "regression", True),
        trial("aa", "inconclusive", False),
        trial("p3", "inconclusive", False),
    ]
    summary = calibrate.summarise(trials, None)
    assert set(summary) == {"aa", "p3"}
    assert (summary["p3"]["trials"], summary["p3"]["regression"]) == (2, 1)
    assert (summary["aa"]["trials"], summary["aa"]["regression"]) == (1, 0)
    assert summary["p3"]["benchmark_fail"] == 1
    assert summary["p3"]["verdicts"] == {"inconclusive": 1, "regression": 1}
