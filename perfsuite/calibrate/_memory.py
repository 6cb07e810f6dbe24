"""`perfsuite calibrate memory`: A/A calibration of the `host-rss` memory source
(docs/calibration-memory.md).

(Formerly `scripts/calibrate_memory.py`, now a wrapper of this; same code, moved.)

Each workload's call is measured `--calls` times in this process (as the engine measures a
candidate: one untimed call after warm-up), in a process that has NumPy, JAX and torch loaded
like a perf test process. Prints, per workload, the readings' spread around their median, in
bytes and relative to the allocation: `HOST_RSS_TOLERANCE` and `HOST_RSS_SLACK_BYTES` must
hold every reading of every workload (and the medians of several processes, `--json` to
collect them). Exit 1 when a workload's readings do not (the tolerance is then too tight for
this machine), 0 when all do.

    perfsuite calibrate memory --calls 100
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any


MiB = 2**20
#: Below glibc's largest mmap threshold (32 MiB) a block may be recycled from the heap
#: without the kernel, reading 0: only the A/A spread is checked there, not the size.
MMAP_THRESHOLD_MAX = 32 * MiB


def workloads() -> dict[str, tuple[Callable[[], Any], int]]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    def numpy_alloc(mib: int) -> Callable[[], float]:
        return lambda: float(np.ones(mib * MiB // 8)[-1])

    def torch_alloc(mib: int) -> Callable[[], float]:
        return lambda: torch.ones(mib * MiB // 4)[-1].item()

    @jax.jit
    def outer_cumsum(
        x: Any,
    ) -> Any:  # a 128 MiB temporary (memory_analysis), 4096 x 4096 x 2 float32
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


def judge_readings(peaks: Sequence[int], size: int) -> dict[str, Any]:
    """Whether one workload's readings hold the tolerance: every reading within
    `HOST_RSS_TOLERANCE * size + HOST_RSS_SLACK_BYTES` of their median, and (at or above the
    mmap threshold) the median that close to the allocation's size."""
    import numpy as np

    from .._memory import HOST_RSS_SLACK_BYTES, HOST_RSS_TOLERANCE

    arr = np.asarray(peaks, dtype=np.int64)
    med = float(np.median(arr))
    dev = float(np.max(np.abs(arr - med)))
    allowed = HOST_RSS_TOLERANCE * size + HOST_RSS_SLACK_BYTES
    ok = dev <= allowed and (size < MMAP_THRESHOLD_MAX or abs(med - size) <= allowed)
    return {"median": med, "dev": dev, "allowed": allowed, "ok": bool(ok)}


def add_parser(sub: Any) -> None:
    from .._values import parse_positive_int

    p = sub.add_parser(
        "memory",
        help="A/A spread of host-RSS memory readings against their calibrated tolerance",
        description="Measure each workload's host-RSS peak --calls times in this process and "
        "check every reading against HOST_RSS_TOLERANCE and HOST_RSS_SLACK_BYTES (Markdown). "
        "Needs NumPy, JAX and torch. Exit 1 when a workload does not hold them. Formerly "
        "scripts/calibrate_memory.py.",
    )
    p.add_argument(
        "--calls", type=parse_positive_int, default=100, help="readings per workload (100)"
    )
    p.add_argument("--json", action="store_true", help="also print the medians as JSON")


def run(args: argparse.Namespace, write: Callable[[str], None]) -> int:
    from .._memory import HOST_RSS_SLACK_BYTES, HOST_RSS_TOLERANCE, measure_call
    from ._rates import markdown_table

    header = ["workload", "calls", "min", "median", "max", "max abs dev from median (B)"]
    header += [
        "rel. to allocation",
        f"within {HOST_RSS_TOLERANCE:.0%} + {HOST_RSS_SLACK_BYTES // MiB} MiB of median and size",
    ]
    rows, out, ok_all = [], {}, True
    for name, (fn, size) in workloads().items():
        for _ in range(3):  # warm-up, as the engine's calls before the measured one
            fn()
        peaks = [measure_call(fn, "host").peak_bytes for _ in range(args.calls)]
        j = judge_readings(peaks, size)
        ok_all &= j["ok"]
        rel = f"{j['dev'] / size:.4%}" if size else "-"
        rows.append(
            [name, args.calls, min(peaks), f"{j['median']:.0f}", max(peaks), f"{j['dev']:.0f}"]
            + [rel, "yes" if j["ok"] else "NO"]
        )
        out[name] = {"size": size, "median": j["median"], "min": min(peaks), "max": max(peaks)}
    write("\n".join(markdown_table(header, rows)))
    if args.json:
        write(json.dumps(out))
    return 0 if ok_all else 1
