"""PyTorch on CUDA: synchronize the device, or time with CUDA events on the current stream.

CPU PyTorch is synchronous and uses the host clock (`select_instrument` picks it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._base import Instrument, PerfUsageError, iter_leaves


def _require_cuda():
    import torch

    if not torch.cuda.is_available():
        raise PerfUsageError("This instrument needs CUDA, and torch sees no CUDA device.")
    return torch


class TorchCudaInstrument(Instrument):
    """Host clock closed by `torch.cuda.synchronize()` after every call."""

    name = "torch-cuda"

    @staticmethod
    def holds(output: Any) -> bool:
        import torch

        return any(isinstance(leaf, torch.Tensor) and leaf.is_cuda for leaf in iter_leaves(output))

    def __init__(self) -> None:
        self._torch = _require_cuda()

    def wait(self, output: Any) -> None:
        del output
        self._torch.cuda.synchronize()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "device": self._torch.cuda.get_device_name()}


class CudaEventInstrument(TorchCudaInstrument):
    """CUDA events recorded on the current stream around the round.

    Measures device time from the first launch to the last kernel's end: host overhead that
    the GPU hides behind queued work does not count, host gaps that starve it do.
    """

    name = "cuda-events"
    interleavable = False

    def time_calls(self, fn: Callable[[], Any], iterations: int) -> tuple[float, Any]:
        torch = self._torch
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        out = None
        start.record()
        for _ in range(iterations):
            out = fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3, out

    def time_chunks(self, fn: Callable[[], Any], chunks: int, group: int) -> list[float]:
        # Events time the queue as a whole; one chunk per round keeps the device busy.
        seconds, _ = self.time_calls(fn, chunks * group)
        return [seconds / (chunks * group)]
