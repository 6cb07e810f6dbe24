"""Seed 001's whole table on one GPU (tp=1), next to the seed's TPU v4 numbers (issue 17).

One subprocess of `scripts/tp_scaling.py` per size, small to large, each with its own
timeout (a size that is slow or runs out of memory costs its own row, not the rest), then
creation-only variants of the largest size that finished, while the overall budget lasts:
XLA's backend at optimisation level 0 for the creation's compile (it runs once), random
bits by XLA's own threefry lowering (`random_kernel=False`, as before the kernel became
the default on one GPU), and with
`--compilation-cache DIR` the same creation twice in two processes (cache cold, then warm).
Prints one Markdown table: params, bytes, transforms, first run of `make_module_opt`
(trace + compile + sharded creation + AdamW state, waited for) and its backend-compile
share, steady `cached` train step, peak device memory (`Device.memory_stats`), and the
seed's first run.

    PYTHONPATH=src:.:.gpu-site python3 scripts/h200_creation.py --compilation-cache /tmp/jax-cc
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


#: Seed 001's first run of `make_module_opt` on TPU v4 (issue 17's table), seconds.
SEED_TPU_FIRST_RUN_S = {
    "4x768": 1.24,
    "12x1024": 3.86,
    "24x2048": 10.28,
    "36x2048": 17.7,
    "48x2048": 23.4,
    "60x2048": 32.4,
}
CONFIGS = ["4x768", "12x1024", "24x2048", "36x2048", "48x2048", "60x2048", "48x4096"]
HERE = Path(__file__).resolve().parent


def run_one(spec: str, extra: list[str], timeout: float, env: dict) -> dict:
    """One `tp_scaling.py` run of one size in a fresh process: its JSON row, or why not."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        cmd = [sys.executable, str(HERE / "tp_scaling.py"), "--configs", spec]
        cmd += ["--json", str(out), *extra]
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, env=env, timeout=timeout, capture_output=True, text=True, check=False
            )
        except subprocess.TimeoutExpired:
            return {"model": spec, "error": f"timed out after {timeout:.0f} s"}
        wall = time.perf_counter() - start
        if not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return {"model": spec, "error": f"rc={proc.returncode}: {tail[0][:120]}"}
        doc = json.loads(out.read_text())
        row = doc["rows"][0] if doc["rows"] else {"model": spec, "error": "no row"}
        row["process_s"] = wall
        row["header"] = doc["header"]
        # Where the first run went: compile events as [count, sum s, largest s].
        print(f"  {spec} {' '.join(extra)}: {json.dumps(row.get('first_run_events'))}")
        return row


def fmt(row: dict, what: str, spec: str) -> str:
    seed = SEED_TPU_FIRST_RUN_S.get(spec)
    seed_s = f"{seed:g}" if seed else "-"
    if "error" in row and "first_run_s" not in row:
        return f"| {spec} | {what} | {row['error']} | | | | | | | {seed_s} |"
    if "error" in row:  # created, then the train step failed (e.g. out of memory)
        return (
            f"| {row['model']} | {what} | {row['params'] / 1e9:.2f}B | "
            f"{row['bytes'] / 2**30:.1f} GiB | {row['transforms']} | {row['first_run_s']:.2f} "
            f"| {row['first_run_compile_s']:.2f} | {row['error']} "
            f"| {row['peak_after_creation_gib']} | {seed_s} |"
        )
    step = f"{row['step_ms']:.1f}" if "step_ms" in row else "-"
    peak = row.get("peak_gib", row.get("peak_after_creation_gib", "n/a"))
    return (
        f"| {row['model']} | {what} | {row['params'] / 1e9:.2f}B | {row['bytes'] / 2**30:.1f} GiB "
        f"| {row['transforms']} | {row['first_run_s']:.2f} | {row['first_run_compile_s']:.2f} "
        f"| {step} | {peak} | {seed_s} |"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=CONFIGS, help="LAYERSxHIDDEN, small first")
    p.add_argument("--timeout", type=float, default=75.0, help="seconds per size")
    p.add_argument("--budget", type=float, default=270.0, help="seconds for everything")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument(
        "--unrolled",
        action="store_true",
        help="train step unrolls the layers (default: scanned, so the step's own compile "
        "stays seconds at 60 layers; the creation is the same either way)",
    )
    p.add_argument("--compilation-cache", default=None, metavar="DIR")
    p.add_argument("--no-step", action="store_true", help="time the creations only")
    args = p.parse_args(argv)

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # peak = what the run needed
    start = time.perf_counter()
    left = lambda: args.budget - (time.perf_counter() - start)  # noqa: E731
    step_args = ["--steps", str(args.steps)] + ([] if args.unrolled else ["--scan-layers"])
    if args.no_step:
        step_args = ["--no-step"]
    lines = [
        "| model | run | params | size (fp32) | transforms | first run (s) | of it backend "
        "compile (s) | step (ms, cached) | peak GiB | seed 001 TPU v4 first run (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    header = None
    finished = []
    for spec in args.configs:
        if left() < 20:
            lines.append(f"| {spec} | skipped: overall budget spent | | | | | | | | |")
            continue
        row = run_one(spec, step_args, min(args.timeout, left()), env)
        header = header or row.get("header")
        lines.append(fmt(row, "default", spec))
        print(lines[-1], flush=True)
        if "error" not in row:
            finished.append(spec)
    level0 = ["--compiler-options", '{"xla_backend_optimization_level": 0}']
    variants = [
        ("backend O0", level0),
        ("XLA's threefry lowering (before)", ["--random-kernel", "off"]),
        ("backend O0, XLA's threefry lowering", [*level0, "--random-kernel", "off"]),
    ]
    if args.compilation_cache:
        # A new directory per invocation: "cold" really starts from an empty cache.
        cache_dir = Path(args.compilation_cache) / f"h200-creation-{time.time_ns()}"
        cache_dir.mkdir(parents=True)
        cache = ["--compilation-cache", str(cache_dir)]
        variants += [("compilation cache, cold", cache), ("compilation cache, warm", cache)]
    # The largest size that finished, then the smallest.
    for spec in dict.fromkeys(finished[-1:] + finished[:1]):
        for what, extra in variants:
            if left() < 20:
                break
            row = run_one(spec, ["--no-step", *extra], min(args.timeout, left()), env)
            lines.append(fmt(row, what, spec))
            print(lines[-1], flush=True)
    print()
    print(header or "(no run reported its devices)")
    print(f"total {time.perf_counter() - start:.0f} s\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
