"""Does trainfast.spd decompose on the GPU? The paper's ResidMLP1 and TMS 40-10 results (issue 18).

Usage (on the GPU machine, project not installed):

    PYTHONPATH=src:.:.gpu-site python3 scripts/h200_spd_recovery.py --steps 10000 --out DIR

For each workload (default `resid_mlp1`, `tms_40-10`) the target is trained with upstream's
recipe on the GPU (`get_workload(name).trained(device="cuda")`, cached in `DIR/targets`), then
SPD runs `--steps` steps with the baseline flags and with `Flags.fastest("cuda")`, each in
its own process (all at once: the GPU is far from busy with these small kernels, so the wall
times printed are of concurrent runs, not step times: those are in the ablation tables).
Each run prints, per decomposed module: live components, how many respond to exactly one
feature, whether every feature has one, and the cosines to the target's feature directions
(`trainfast.spd.evaluate_decomposition`). A Markdown table at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def one(workload: str, flags: str, steps: int, seed: int, out: Path, device: str) -> None:
    import torch

    from trainfast.spd import Flags, decompose, get_workload

    w = get_workload(workload).trained(device=device)
    f = Flags() if flags == "baseline" else Flags.fastest(device)
    d = decompose(w, steps, flags=f, seed=seed, device=device)
    rows = {}
    for path, m in d.modules.items():
        single = sum(1 for v in m.features.values() if len(v) == 1)
        cos = [c for c in m.cosines.values() if c is not None]
        rows[path] = {
            "live": m.n_live,
            "one_feature": single,
            "features_covered_once": m.covers_features_once(w.n_features),
            "distinct_features": len(set(m.feature_map.values())),
            "min_cosine": min(cos) if cos else None,
            "median_cosine": sorted(cos)[len(cos) // 2] if cos else None,
            "cos_gt_0.99": sum(c > 0.99 for c in cos),
        }
    hist = d.trainer.history[-1] if d.trainer.history else {}
    res = {
        "workload": workload,
        "flags": flags,
        "steps": steps,
        "seed": seed,
        "n_features": w.n_features,
        "seconds": d.seconds,
        "modules": rows,
        "last_losses": {k: float(v) for k, v in hist.items() if isinstance(v, (int, float))},
        "device": torch.cuda.get_device_name() if device == "cuda" else device,
    }
    (out / f"{workload}_{flags}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="resid_mlp1,tms_40-10")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.environ.get("OUT", "/tmp/spd-recovery"))
    p.add_argument("--device", default="cuda")
    p.add_argument("--limit-s", type=float, default=420.0, help="per run")
    p.add_argument("--one", nargs=2, metavar=("WORKLOAD", "FLAGS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TRAINFAST_SPD_CACHE", str(out / "targets"))
    if args.one:
        one(*args.one, args.steps, args.seed, out, args.device)
        return
    # Train the targets first, one process each (concurrent decompositions would race).
    workloads = args.workloads.split(",")
    t0 = time.perf_counter()
    train = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                (
                    "import sys; from trainfast.spd import get_workload; "
                    f"get_workload({w!r}).trained(device={args.device!r})"
                ),
            ]
        )
        for w in workloads
    ]
    for proc in train:
        proc.wait()
    print(f"targets ready in {time.perf_counter() - t0:.0f} s", flush=True)
    procs = {}
    for w in workloads:
        for flags in ("baseline", "fastest"):
            cmd = [
                sys.executable,
                __file__,
                "--one",
                w,
                flags,
                "--steps",
                str(args.steps),
                "--seed",
                str(args.seed),
                "--out",
                str(out),
            ]
            procs[(w, flags)] = subprocess.Popen(cmd)
    deadline = time.monotonic() + args.limit_s
    for key, proc in procs.items():
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            print(f"{key}: killed after {args.limit_s:.0f} s", flush=True)
    print(
        "\n| workload | flags | steps | module | live | one feature each | all features once "
        "| cos > 0.99 | min cos | wall s (concurrent) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for w, flags in procs:
        f = out / f"{w}_{flags}.json"
        if not f.exists():
            print(f"| {w} | {flags} | {args.steps} | (no result) | | | | | | |")
            continue
        r = json.loads(f.read_text())
        for path, m in r["modules"].items():
            mc = m["min_cosine"]
            print(
                f"| {w} | {flags} | {r['steps']} | {path} | {m['live']} / {r['n_features']} "
                f"| {m['one_feature']} | {m['features_covered_once']} | {m['cos_gt_0.99']} "
                f"| {'' if mc is None else f'{mc:.4f}'} | {r['seconds']:.0f} |"
            )


if __name__ == "__main__":
    main()
