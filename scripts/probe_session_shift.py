"""What is the whole-session shift? (docs/calibration-baseline.md, run 5, step 1.)

Starts N plain Python processes per condition, interleaved; each times four kernels in
interleaved, rotated rounds (5 calls per kernel per round, the median over rounds kept): the
calibration workload's `loop` (pure-Python additions) and `chain` (64x64 float64 products),
and two unrelated references, `ref_py` (dict/str churn) and `ref_np` (a sort and a 48x48
product). Prints, per condition, the spread (SD of log) across processes of each kernel alone
and of workload/reference (per process, and paired per round), and the correlation of the
kernels' log times across processes.

Reading: if the shift is machine-wide (CPU frequency, steal, other tenants) every kernel of a
process moves together (high correlation) and workload/reference varies much less than the
workload alone; if it is the process's own (address layout, hash seeds) fixing those
(`PYTHONHASHSEED=0 setarch -R`, condition `hash0_noaslr`) narrows the spread.

    flock /tmp/calib.lock python scripts/probe_session_shift.py 40 20 --hash0
    flock /tmp/calib.lock python scripts/probe_session_shift.py 30 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


CHILD = 'import os, sys, time, json, statistics\nos.environ.setdefault("OPENBLAS_NUM_THREADS", "1")\nimport numpy as np\nA = np.random.default_rng(0).standard_normal((64, 64))\nB = np.random.default_rng(1).standard_normal((64, 64)) / 8\ndef loop(n=20000):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\ndef chain(n=40):\n    x = A\n    for _ in range(n):\n        x = x @ B\n    return x\n# references: different code from the workloads\ndef ref_py(n=3000):\n    d = {}\n    out = []\n    for i in range(n):\n        d[i & 255] = d.get(i & 255, 0) + 1\n        out.append(str(i))\n    return len(out)\nV = np.random.default_rng(2).standard_normal(4096)\nM = np.random.default_rng(3).standard_normal((48, 48))\ndef ref_np(n=20):\n    x = 0.0\n    for _ in range(n):\n        x += float(np.sort(V)[7]) + float((M @ M).sum())\n    return x\nks = {"loop": loop, "chain": chain, "ref_py": ref_py, "ref_np": ref_np}\nfor f in ks.values():\n    for _ in range(20): f()\nrounds = int(sys.argv[1])\nres = {k: [] for k in ks}\nnames = list(ks)\nt0 = time.perf_counter()\nfor r in range(rounds):\n    order = names[r % 4:] + names[:r % 4]\n    for k in order:\n        f = ks[k]\n        s = time.perf_counter()\n        for _ in range(5): f()\n        res[k].append((time.perf_counter() - s) / 5)\nprint(json.dumps({k: statistics.median(v) for k, v in res.items()} | {"wall": time.perf_counter()-t0, "rounds": res}))\n'


def sd(x):
    return float(np.std(np.log(x), ddof=1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("processes", type=int)
    p.add_argument("rounds", type=int)
    p.add_argument("--hash0", action="store_true", help="also PYTHONHASHSEED=0 alone")
    args = p.parse_args()
    conds = {"default": ([], {})}
    if args.hash0:
        conds["hash0"] = ([], {"PYTHONHASHSEED": "0"})
    conds["hash0_noaslr"] = (["setarch", "-R"], {"PYTHONHASHSEED": "0"})
    child = Path(tempfile.mkdtemp()) / "child.py"
    child.write_text(CHILD)
    out = {c: [] for c in conds}
    for _ in range(args.processes):
        for c, (pre, env) in conds.items():
            cmd = [*pre, sys.executable, str(child), str(args.rounds)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **env))
            out[c].append(json.loads(proc.stdout))
    for c, rs in out.items():
        L = np.array([r["loop"] for r in rs])
        C = np.array([r["chain"] for r in rs])
        P = np.array([r["ref_py"] for r in rs])
        Q = np.array([r["ref_np"] for r in rs])
        ref = np.sqrt(P * Q)
        print(
            f"{c:14s} n={len(rs)} SD log: loop {sd(L):.3f} chain {sd(C):.3f} refpy {sd(P):.3f} "
            f"refnp {sd(Q):.3f} | loop/refpy {sd(L / P):.3f} loop/ref {sd(L / ref):.3f} "
            f"chain/refnp {sd(C / Q):.3f} chain/ref {sd(C / ref):.3f} | max/min loop "
            f"{L.max() / L.min():.2f} chain {C.max() / C.min():.2f} loop/ref "
            f"{(L / ref).max() / (L / ref).min():.2f} chain/ref "
            f"{(C / ref).max() / (C / ref).min():.2f}"
        )
        corr = [np.corrcoef(np.log(a), np.log(b))[0, 1] for a, b in ((L, P), (C, Q), (L, C))]
        print(
            "   corr log loop~refpy {:.2f} chain~refnp {:.2f} loop~chain {:.2f}".format(
                *tuple(corr)
            )
        )
        paired_l, paired_c = [], []
        for r in rs:
            R = r["rounds"]
            rr = np.sqrt(np.array(R["ref_py"]) * np.array(R["ref_np"]))
            paired_l.append(np.median(np.array(R["loop"]) / rr))
            paired_c.append(np.median(np.array(R["chain"]) / rr))
        pl, pc = np.array(paired_l), np.array(paired_c)
        print(
            f"{c:14s} per-round paired: loop/ref {sd(pl):.3f} (max/min {pl.max() / pl.min():.2f}) "
            f"chain/ref {sd(pc):.3f} (max/min {pc.max() / pc.min():.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
