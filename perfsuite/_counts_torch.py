"""PyTorch's counters: FLOPs and aten ops dispatched, CUDA kernels launched, graphs compiled.

Each is a context manager (or a reading) that yields None where torch (or CUDA) is not
loaded, so that a JAX-only or pure-Python call is counted without importing torch.
"""

from __future__ import annotations

import collections
import contextlib
import sys
from collections.abc import Iterator
from typing import Any


# --------------------------------------------------------------------------- PyTorch


@contextlib.contextmanager
def _torch_work() -> Iterator[dict[str, Any] | None]:
    """Torch FLOPs and aten ops of the block (and the matmuls' dtypes); None without torch."""
    if "torch" not in sys.modules:
        yield None
        return
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    out: dict[str, Any] = {"dtypes": collections.Counter()}
    matmuls = {
        "mm",
        "addmm",
        "bmm",
        "baddbmm",
        "matmul",
        "convolution",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
    }

    class AtenCounter(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops += 1
            name = func.overloadpacket.__name__
            if name in matmuls and args and isinstance(args[-1], torch.Tensor):
                out["dtypes"][str(args[-1].dtype).replace("torch.", "")] += 1
            return func(*args, **(kwargs or {}))

    flops = FlopCounterMode(display=False)
    aten = AtenCounter()
    with flops, aten:
        yield out
    out["torch_flops"] = int(flops.get_total_flops())
    out["aten_ops"] = aten.ops
    # f32 matmuls may run on TF32 tensor cores when the user allowed it (torch's default is
    # "highest": true f32).
    out["tf32"] = torch.get_float32_matmul_precision() != "highest" or bool(
        getattr(torch.backends.cuda.matmul, "allow_tf32", False)
    )


@contextlib.contextmanager
def _cuda_kernels() -> Iterator[dict[str, int] | None]:
    """CUDA kernels launched in the block (the profiler's kernel events); None without CUDA.

    A reading of its own, without the dispatch modes of `_torch_work`: with a
    `TorchDispatchMode` active, a `torch.compile`d function runs eagerly (its kernels read as
    eager's: 1119 for SPD resid_mlp3 compiled and eager alike on the H200).
    """
    torch = sys.modules.get("torch")
    if torch is None or not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        yield None
        return
    out: dict[str, int] = {}
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
    with profiler:
        yield out
        torch.cuda.synchronize()
    out["cuda_kernels"] = sum(
        1
        for e in profiler.events()
        if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA
    )


def _dynamo_graphs() -> int | None:
    dynamo_utils = sys.modules.get("torch._dynamo.utils")
    if dynamo_utils is None:
        return None
    return int(dynamo_utils.counters["stats"]["unique_graphs"])
