"""Where does an SPD training step spend its GPU time? Step times per flag set, then a kernel table.

    python scripts/profile_spd.py --workload resid_mlp3 --device cuda \
        --config all_on --config all_on-cuda_graphs --profile all_on-cuda_graphs

A config is `baseline`, `all_on` (`Flags.fastest`), `exact`, or one of those followed by
`-flag` / `+flag` edits (`all_on-fused_ci_fn`). Step times are the median of `--repeats`
windows of `--steps` synchronized steps after `--warmup`. `--profile CONFIG` records
`--profile-steps` steps with `torch.profiler` and prints the kernels by total device time
(profile a config without `cuda_graphs`: the replayed graph hides its kernels' names).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import re
import statistics

import torch

from trainfast.spd import Flags, make_trainer
from trainfast.spd._bench import time_steps


def parse_config(spec: str, device: str) -> Flags:
    head, *edits = re.split(r"(?=[+-][a-z])", spec)
    base = {"baseline": Flags(), "all_on": Flags.fastest(device), "exact": Flags.exact()}
    if head not in base:
        raise SystemExit(f"--config {spec!r}: must start with one of {', '.join(base)}")
    flags = base[head]
    for edit in edits:
        name = edit[1:]
        if name not in Flags.names():
            raise SystemExit(f"--config {spec!r}: unknown flag {name!r}")
        flags = dataclasses.replace(flags, **{name: edit[0] == "+"})
    return flags


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workload", default="resid_mlp3")
    p.add_argument("--device", default="cuda")
    p.add_argument("--config", action="append", default=[])
    p.add_argument("--profile", action="append", default=[])
    p.add_argument("--warmup", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--profile-steps", type=int, default=5)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()

    for spec in dict.fromkeys(args.config + args.profile):
        flags = parse_config(spec, args.device)
        trainer = make_trainer(args.workload, flags=flags, device=args.device)
        try:
            samples = time_steps(trainer, warmup=args.warmup, n=args.steps, repeats=args.repeats)
            ms = 1e3 * statistics.median(samples)
            print(f"{args.workload} {spec}: {ms:.2f} ms/step "
                  f"(windows {', '.join(f'{1e3 * s:.2f}' for s in samples)})", flush=True)  # fmt: skip
            if spec in args.profile:
                acts = [torch.profiler.ProfilerActivity.CPU]
                if args.device.startswith("cuda"):
                    acts.append(torch.profiler.ProfilerActivity.CUDA)
                with torch.profiler.profile(activities=acts) as prof:
                    for _ in range(args.profile_steps):
                        trainer.step()
                    torch.cuda.synchronize()
                key = "cuda_time_total" if args.device.startswith("cuda") else "cpu_time_total"
                table = prof.key_averages().table(
                    sort_by=key, row_limit=args.top, max_name_column_width=70
                )
                print(f"--- {spec}: {args.profile_steps} steps, by {key}\n{table}", flush=True)
        finally:
            trainer.close()
            del trainer
            torch._dynamo.reset()
            gc.collect()
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
