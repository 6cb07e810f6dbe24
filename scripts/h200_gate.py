"""The stored-baseline gate on the H200: device-timed series are judged on raw times.

Usage (on the device, from the tree, nothing installed; under 4 minutes):

    PYTHONPATH=src:.:.gpu-site python3 scripts/h200_gate.py [--trials 6] [--out PATH]

Runs `scripts/calibrate_baseline.py --workload torch-cuda`: real pytest sessions, each
`pytest --perf --perf-quick --perf-compare=NAME --perf-fail=5%`, of a test file with a host
loop (`loop`, CPU-bound: judged relative to the machine-speed reference) and a chain of bf16
2048x2048 matrix products on the GPU (`chain`, timed by the torch-cuda instrument: judged on
raw times, since a device's time does not follow the host's speed). Scenarios: A/A and 2x
against 1- and 5-session baselines. Prints a Markdown table: sessions failed (exit 1 with a
REGRESSION line) with 95% Wilson intervals, per series whether it was normalised, its CPU
share, the ratios seen. What to look for: A/A 0 failed, 2x all caught, `chain` never
normalised, `loop` always.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trials", type=int, default=6, help="sessions per scenario")
    p.add_argument("--out", type=Path, default=None, help="also keep the calibration JSON")
    p.add_argument("--time-limit", type=float, default=200.0)
    args = p.parse_args()
    spec = importlib.util.spec_from_file_location("calib", ROOT / "scripts/calibrate_baseline.py")
    calib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(calib)
    out = args.out or Path(tempfile.mkdtemp()) / "h200_gate.json"
    n = str(args.trials)
    argv = [
        "--workload", "torch-cuda", "--scenarios", "aa:1,x2:1,aa:5,x2:5",
        "--trials", n, "--detect-trials", n, "--rebaseline", n, "--loop-n", "20000",
        "--chain-n", "200", "--time-limit", str(args.time_limit), "--quiet", "--out", str(out),
    ]  # fmt: skip
    calib.main(argv)
    report = json.loads(out.read_text())
    print("\n| scenario | failed / sessions | rate (95% Wilson) | series | normalised | cpu share "
          "| ratios (raw) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for scenario, v in report["summary"].items():
        ts = [t for t in report["trials"] if t["scenario"] == scenario]
        lo, hi = v["wilson95"]
        for k in sorted(ts[0]["ratios"]):
            norm = sorted({str(t["normalised"].get(k)) for t in ts})
            shares = [t["cpu_shares"].get(k) for t in ts if t["cpu_shares"].get(k) is not None]
            ratios = [t["ratios"][k] for t in ts]
            raws = [t["raw_ratios"][k] for t in ts]
            print(
                f"| {scenario} | {v['failed']}/{v['sessions']} | {v['rate']:.0%} "
                f"[{lo:.0%}, {hi:.0%}] | {k} | {'/'.join(norm)} | "
                f"{min(shares, default=0):.2f}-{max(shares, default=0):.2f} | "
                f"{min(ratios):.2f}x-{max(ratios):.2f}x ({min(raws):.2f}x-{max(raws):.2f}x) |"
            )
    print(f"\n{report['seconds']:.0f} s, machine {report['machine'].get('id')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
