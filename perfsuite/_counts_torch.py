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
    with _eager_stance(torch), flops, aten:
        yield out
    out["torch_flops"] = int(flops.get_total_flops())
    out["aten_ops"] = aten.ops
    # f32 matmuls may run on TF32 tensor cores when the user allowed it (torch's default is
    # "highest": true f32).
    out["tf32"] = torch.get_float32_matmul_precision() != "highest" or bool(
        getattr(torch.backends.cuda.matmul, "allow_tf32", False)
    )


def _eager_stance(torch: Any) -> contextlib.AbstractContextManager:
    """Run `torch.compile`d frames eagerly inside the block, and only there.

    A compiled frame called while a `TorchDispatchMode` is active falls back to eager, and
    Dynamo keeps that choice: every later call of it ran eagerly too (seen on the CPU with
    torch 2.13, and on the H200 as SPD `compile` reading eager's 1119 kernels per step). The
    engine counts a candidate before its timed rounds, so a compiled candidate was timed
    uncompiled. Under the `force_eager` stance Dynamo does not look at the frame at all, so
    nothing is cached and the compiled code runs again afterwards. The counters then see
    the eager program's aten ops and FLOPs, which is what they can count: inductor's fused
    kernels are not dispatched ops.
    """
    # Nothing can have been compiled before Dynamo is imported, and `set_stance` would import
    # it: seconds of import inside a reading, and under pytester's in-process runs (which
    # drop modules first imported inside them) a second import that breaks torch for the
    # rest of the process ("Only a single TORCH_LIBRARY can be used to register ...").
    if "torch._dynamo" not in sys.modules:
        return contextlib.nullcontext()
    set_stance = getattr(torch.compiler, "set_stance", None)
    if set_stance is None:  # torch < 2.6: no stances (and no way to keep the frame compiled)
        return contextlib.nullcontext()
    return set_stance("force_eager")


@contextlib.contextmanager
def _cuda_kernels() -> Iterator[dict[str, int] | None]:
    """CUDA kernels launched in the block (the profiler's kernel events); None without CUDA.

    A reading of its own, without the dispatch modes of `_torch_work` (under which a
    `torch.compile`d function runs eagerly), so a compiled call's kernels are inductor's.
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
