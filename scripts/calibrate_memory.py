"""A/A calibration of the `host-rss` memory source (docs/calibration-memory.md).

Each workload's call is measured `--calls` times in this process (as the engine measures a
candidate: one untimed call after warm-up), in a process that has NumPy, JAX and torch loaded
like a perf test process. Prints, per workload, the readings' spread around their median, in
bytes and relative to the allocation: `HOST_RSS_TOLERANCE` and `HOST_RSS_SLACK_BYTES` must
hold every reading of every workload (and the medians of several processes, `--json` to
collect them).

    PYTHONPATH=.:src python scripts/calibrate_memory.py --calls 100
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from perfsuite._memory import HOST_RSS_SLACK_BYTES, HOST_RSS_TOLERANCE, measure_call


MiB = 2**20


def workloads():
    import jax
    import jax.numpy as jnp
    import torch

    def numpy_alloc(mib):
        return lambda: float(np.ones(mib * MiB // 8)[-1])

    def torch_alloc(mib):
        return lambda: torch.ones(mib * MiB // 4)[-1].item()

    @jax.jit
    def outer_cumsum(x):  # a 128 MiB temporary (memory_analysis), 4096 x 4096 x 2 float32
        return jnp.cumsum(jnp.outer(x, x), axis=0)[::7, ::7].sum()

    x = jnp.ones(4096, jnp.float32)

    return {
        "nothing": (lambda: None, 0),
        "XLA:CPU jitted, 128 MiB temp": (lambda: outer_cumsum(x).block_until_ready(), 128 * MiB),
        "numpy 1 MiB": (numpy_alloc(1), MiB),
        "numpy 16 MiB": (numpy_alloc(16), 16 * MiB),
        "numpy 128 MiB": (numpy_alloc(128), 128 * MiB),
        "torch 256 MiB": (torch_alloc(256), 256 * MiB),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    out = {}
    print(
        f"| workload | calls | min | median | max | max abs dev from median (B) | "
        f"rel. to allocation | within {HOST_RSS_TOLERANCE:.0%} + {HOST_RSS_SLACK_BYTES // MiB} MiB of median and size |"
    )
    print("|---|---|---|---|---|---|---|---|")
    ok_all = True
    for name, (fn, size) in workloads().items():
        for _ in range(3):  # warm-up, as the engine's calls before the measured one
            fn()
        peaks = np.array([measure_call(fn, "host").peak_bytes for _ in range(args.calls)])
        med = float(np.median(peaks))
        dev = float(np.max(np.abs(peaks - med)))
        allowed = HOST_RSS_TOLERANCE * size + HOST_RSS_SLACK_BYTES
        # Below glibc's largest mmap threshold (32 MiB) a block may be recycled from the heap
        # without the kernel, reading 0: only the A/A spread is checked there, not the size.
        ok = dev <= allowed and (size < 32 * MiB or abs(med - size) <= allowed)
        ok_all &= ok
        rel = f"{dev / size:.4%}" if size else "-"
        print(
            f"| {name} | {args.calls} | {peaks.min()} | {med:.0f} | {peaks.max()} | {dev:.0f} "
            f"| {rel} | {'yes' if ok else 'NO'} |"
        )
        out[name] = {"size": size, "median": med, "min": int(peaks.min()), "max": int(peaks.max())}
    if args.json:
        json.dump(out, sys.stdout)
        print()
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
