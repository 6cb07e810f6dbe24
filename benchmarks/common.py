"""Shared helpers for the asv suite: accelerator checks, syncing, and ratio timing.

Frameworks are imported lazily, inside the helpers, so that the PyTorch benchmarks never
import JAX and the other way round (as in `trainfast` itself).
"""

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


def interleaved_ratio(slow: Callable[[], Any], fast: Callable[[], Any]) -> float:
    """`time(slow) / time(fast)`, measured by perfsuite's engine (the one the perf tests use).

    Used by the `track_` speedup benchmarks: first calls and warm-up are kept apart, the two
    run in alternating rounds, and the estimate is the median of the paired per-round
    ratios, so slow drifts of a shared machine do not land on one side only. The engine
    waits for JAX outputs itself.
    """
    from perfsuite import compare

    return compare(fast=fast, slow=slow).ratio("fast", over="slow").estimate
