"""Shared helpers for the asv suite: accelerator checks, syncing, and ratio timing.

Frameworks are imported lazily, inside the helpers, so that the PyTorch benchmarks never
import JAX and the other way round (as in `trainfast` itself).
"""

import time
from collections.abc import Callable
from typing import Any


def jax_backend() -> str:
    """`jax.default_backend()`: `"cpu"`, `"gpu"` or `"tpu"`."""
    import jax

    return jax.default_backend()


def require_jax_accelerator(what: str) -> None:
    """Skip (asv: `NotImplementedError` in `setup`) unless JAX runs on a GPU or TPU."""
    backend = jax_backend()
    if backend == "cpu":
        raise NotImplementedError(f"{what} needs a GPU or TPU; JAX's default backend is cpu")


def require_cuda(what: str) -> None:
    """Skip (asv: `NotImplementedError` in `setup`) unless PyTorch sees a CUDA device."""
    import torch

    if not torch.cuda.is_available():
        raise NotImplementedError(f"{what} needs CUDA; torch.cuda.is_available() is False")


def block_jax(out: Any) -> Any:
    """Wait for every JAX array in `out`: a timer that does not wait measures dispatch only."""
    import jax

    return jax.block_until_ready(out)


def sync_torch(device: str) -> None:
    """Wait for queued CUDA work; nothing to do on CPU."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def seconds_per_call(fn: Callable[[], Any], *, min_time: float = 0.05) -> float:
    """Mean seconds per call of `fn` over back-to-back calls lasting at least `min_time`."""
    number = 0
    start = time.perf_counter()
    while True:
        fn()
        number += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / number


def interleaved_ratio(
    slow: Callable[[], Any], fast: Callable[[], Any], *, rounds: int = 3, min_time: float = 0.05
) -> float:
    """`time(slow) / time(fast)`: the best of `rounds` samples each, taken alternately.

    Used by the `track_` speedup benchmarks. Alternating keeps slow drifts of a shared machine
    from landing on one side only, and the minimum is the robust statistic for micro-work.
    `fn` must wait for its own outputs (see `block_jax`).
    """
    slow()  # warm-up: caches, lazy imports, first-call compilation
    fast()
    slow_best = fast_best = float("inf")
    for _ in range(rounds):
        slow_best = min(slow_best, seconds_per_call(slow, min_time=min_time))
        fast_best = min(fast_best, seconds_per_call(fast, min_time=min_time))
    return slow_best / fast_best
