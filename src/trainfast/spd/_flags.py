"""Optimization flags: every speedup is one boolean, and all off is the faithful baseline.

Flags fall into two groups, which the tests treat differently:

- *exact* flags change only host-side work (Python, hook bookkeeping, syncs, I/O, data
  staging), so losses and parameters stay bitwise equal to the baseline after any number of
  steps;
- *approximate* flags change the kernels or their order (fusion, reassociation, bf16, a
  different RNG stream under CUDA graphs), so they are tested with documented tolerances.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


EXACT_FLAGS: tuple[str, ...] = (
    "persistent_hooks",
    "explicit_forward",
    "cache_target_weights",
    "no_host_syncs",
    "prefetch",
    "async_checkpoint",
    "lean_gc",
    "data_workers",
    "pin_memory",
    "non_blocking",
)
"""Flags that keep every loss term and parameter bitwise equal to the baseline."""

DATA_FLAGS: tuple[str, ...] = ("data_workers", "pin_memory", "non_blocking", "prefetch")
"""Flags of the host-side data pipeline. `data_workers`, `pin_memory` and `non_blocking` act
only on workloads whose batches come from a CPU `DataLoader` (the LM workloads, `_lm.py`); the
toys generate their batches on the device, where these three have nothing to do (no-ops)."""

APPROX_FLAGS: tuple[str, ...] = (
    "fused_adamw",
    "fused_unmasked",
    "fused_ci_fn",
    "compile",
    "bf16",
    "cuda_graphs",
)
"""Flags that change rounding or the random stream; tested against tolerances."""

CUDA_ONLY_FLAGS: tuple[str, ...] = ("cuda_graphs",)
"""Flags that cannot run on CPU (capturing a CUDA graph needs a CUDA device)."""


@dataclass(frozen=True)
class Flags:
    """Which optimizations are on. The default (all `False`) is the upstream baseline.

    Attributes:
        persistent_hooks: register one forward hook per decomposed module once, at
            construction, and drive it through a per-call context, instead of registering and
            removing hooks around every forward (exact).
        explicit_forward: call the target's own forward with a `sub(name, x, linear)` callback
            at each decomposed Linear: no hooks, and the replaced Linear is not run (exact).
        cache_target_weights: look up each frozen target weight once instead of
            `get_submodule` + type dispatch on every step (exact).
        no_host_syncs: keep loss terms, L0 and grad norms on the device and copy them to the
            host once per `train_log_freq`; drop the `assert` checks that sync (exact).
        fused_adamw: `AdamW(fused=True)` instead of the foreach implementation.
        fused_unmasked: when a component forward has no mask, no delta and no cache, compute
            `x @ (V @ U)` (one GEMM against the rebuilt weight) instead of `(x @ V) @ U`.
        fused_ci_fn: on CUDA, evaluate the `mlp` CI function with one hidden layer (every toy
            config) and its backward with a fused Triton kernel that never writes the
            `(B, C, hidden)` intermediates, the bulk of resid_mlp3's GPU time
            (`_ci_kernel`). Otherwise (CPU, deeper MLPs) write its width-1 layers as broadcast
            multiply and sum instead of einsums (batched GEMMs with K=1 / N=1), which
            Inductor can fuse under `compile`. Same math, another summation order.
        compile: `torch.compile` the forward + causal importance + loss function (random
            numbers are drawn outside the compiled region, so masks equal eager's).
        bf16: run forward, causal importances and losses under bf16 autocast.
        prefetch: produce the next batch one step ahead (on a side stream on CUDA; pinned
            memory plus `non_blocking` for host-side data) with the same dedicated generator
            (exact).
        async_checkpoint: snapshot the `state_dict` at the same point, write it in a thread
            (exact: the saved tensors are equal).
        lean_gc: skip the `torch.cuda.empty_cache(); gc.collect()` pair after warm-up and after
            each evaluation (exact).
        data_workers: load host-side batches in `DataLoader` worker processes (the workload's
            `num_workers`) instead of the training process (exact: each batch is a function
            of its index, not of the worker that made it). LM workloads only.
        pin_memory: `DataLoader(pin_memory=True)` on CUDA (page-locked batches; the copy to
            the GPU can then be asynchronous). Nothing to pin without CUDA. LM workloads only.
        non_blocking: `batch.to(device, non_blocking=True)` (asynchronous only from pinned
            memory; same values). LM workloads only.
        cuda_graphs: capture the whole training step (forward, backward, clipping, optimizer) in
            one CUDA graph and replay it; needs `device="cuda"`. Implies the device-side
            logging of `no_host_syncs` inside the graph and a capturable optimizer.
    """

    persistent_hooks: bool = False
    explicit_forward: bool = False
    cache_target_weights: bool = False
    no_host_syncs: bool = False
    fused_adamw: bool = False
    fused_unmasked: bool = False
    fused_ci_fn: bool = False
    compile: bool = False
    bf16: bool = False
    prefetch: bool = False
    async_checkpoint: bool = False
    lean_gc: bool = False
    cuda_graphs: bool = False
    data_workers: bool = False
    pin_memory: bool = False
    non_blocking: bool = False

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """All flag names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def parse(cls, flags: Flags | Mapping[str, bool] | Iterable[str] | None) -> Flags:
        """Build `Flags` from `None`, a `Flags`, a `{name: bool}` mapping or names to switch on.

        Raises:
            ValueError: a name is not a known flag (the message lists the known ones), or a
                value in a mapping is not a bool.
        """
        if flags is None:
            return cls()
        if isinstance(flags, Flags):
            return flags
        if isinstance(flags, str):
            flags = [flags]
        items = dict(flags) if isinstance(flags, Mapping) else {name: True for name in flags}
        known = cls.names()
        for name, value in items.items():
            if name not in known:
                raise ValueError(f"unknown flag {name!r}; known flags: {', '.join(known)}")
            if not isinstance(value, bool):
                raise ValueError(f"flag {name!r} must be a bool, got {value!r}")
        return cls(**items)

    @classmethod
    def exact(cls) -> Flags:
        """Every exact flag on (the set the bitwise tests and the CPU perf test use)."""
        return cls(**{name: True for name in EXACT_FLAGS})

    @classmethod
    def fastest(cls, device: str, *, bf16: bool = False) -> Flags:
        """Every flag that speeds training up on `device`.

        `bf16` is left out unless asked for: on the launch-bound toys it adds cast kernels and
        is slower (../shared/docs/spd.md section 2 measured +13-20%); the LM workloads are
        GEMM-bound and ask for it (`LMWorkload.fastest_flags`). `cuda_graphs` is included only
        on CUDA.
        """
        on = {name: True for name in cls.names() if name != "bf16"}
        on["bf16"] = bf16
        on["cuda_graphs"] = str(device).startswith("cuda")
        return cls(**on)

    def on(self) -> tuple[str, ...]:
        """Names of the flags that are on."""
        return tuple(name for name in self.names() if getattr(self, name))

    def check_device(self, device: str) -> None:
        """Raise if a flag needs a device that `device` is not.

        Raises:
            ValueError: e.g. `cuda_graphs` on `device="cpu"`.
        """
        if str(device).startswith("cuda"):
            return
        for name in CUDA_ONLY_FLAGS:
            if getattr(self, name):
                raise ValueError(f"flag {name!r} needs device='cuda'; got device={str(device)!r}")

    @property
    def hook_mode(self) -> str:
        """`"explicit"`, `"persistent"` or `"per_call"` (explicit wins when both are on)."""
        if self.explicit_forward:
            return "explicit"
        if self.persistent_hooks:
            return "persistent"
        return "per_call"

    @property
    def lazy_logging(self) -> bool:
        """Whether logged values stay on the device between log steps."""
        return self.no_host_syncs or self.cuda_graphs
