"""`perfsuite calibrate baseline`: its sessions are real gated pytest sessions.

The calibration itself takes a quarter of an hour (docs/calibration-baseline.md); this runs
one round of two scenarios through `scripts/calibrate_baseline.py`, now a wrapper of the
command (so the wrapper is proven too), and checks that the slowdown it sets is the slowdown
measured.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

from perfsuite._baseline import DEFAULT_BAND, DEFAULT_BAND_NORMALISED


ROOT = Path(__file__).resolve().parents[2]


def test_one_round_saves_a_baseline_and_gates_against_it(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "calibrate_baseline", ROOT / "scripts/calibrate_baseline.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "calib.json"
    argv = ["--trials", "1", "--detect-trials", "1", "--scenarios", "aa:1,x2:1", "--out", str(out)]
    assert module.main([*argv, "--loop-n", "5000", "--chain-n", "10"]) == 0
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {"aa:1", "x2:1"}
    by = {t["scenario"]: t for t in report["trials"]}
    assert set(by["aa:1"]["ratios"]) == {"loop", "chain"}

    # Twice the work reads as more time than unchanged code. (Only that: on a shared machine
    # one session of identical code can read 0.5x-2.7x, docs/calibration-baseline.md.)
    def mean_log(ratios: dict[str, float]) -> float:
        return sum(math.log(r) for r in ratios.values()) / len(ratios)

    assert mean_log(by["x2:1"]["ratios"]) > mean_log(by["aa:1"]["ratios"])
    # Both workloads are CPU-bound: judged relative to the machine-speed reference (its
    # default band), with the raw rule's numbers recorded beside it.
    assert all(by["aa:1"]["normalised"].values())
    assert all(b == DEFAULT_BAND_NORMALISED for b in by["aa:1"]["bands"].values())
    assert all(b == DEFAULT_BAND for b in by["aa:1"]["raw_bands"].values())
    assert set(by["aa:1"]["reference_ratios"]) == {"loop", "chain"}
