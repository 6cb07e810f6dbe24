"""A fused CUDA kernel for the `mlp` CI function with one hidden layer (the toy configs' case).

Per component `c` the CI function is a scalar MLP `1 -> H -> 1` with exact (erf) GELU:

    p[n, c, h] = a[n, c] * w1[c, h] + b1[c, h]
    out[n, c]  = sum_h gelu(p[n, c, h]) * w2[c, h] + b2[c]

Written with tensors, the `(N, C, H)` intermediates are materialised (resid_mlp3: 2048 x 500 x
128 floats, 0.5 GB, per decomposed module) and read back several times by the backward; under
`torch.compile` Inductor recomputes them but still needs four passes over them (one forward,
three backward reductions along different axes), about 1.1 ms per module on an H100. Here one
forward pass and one backward pass each evaluate `p` once per element in registers:

- forward: a program owns a `(BLOCK_N, BLOCK_C)` tile of `a` and loops over `h`;
- backward: the same tile and loop give `d a` (reduced over `h` in registers) and, per `h`,
  the tile's partial sums over `n` of `d w1`, `d b1`, `d w2`; the partials of all row tiles are
  added afterwards by `torch.sum` (deterministic, unlike atomics).

Everything is fp32 (bf16 inputs are upcast). The sums run in another order than the tensor
version, so results agree to rounding (the `fused_ci_fn` flag is an *approximate* flag).

The kernel is a `torch.library` custom op (`trainfast::ci_mlp`) with a registered backward
and fake implementation, so `torch.compile` treats it as one opaque node and CUDA graphs
capture its launches. Triton is imported lazily: CPU-only installs never need it.
"""

from __future__ import annotations

import functools
import importlib.util

import torch
from torch import Tensor


# Tiles `(BLOCK_N, BLOCK_C, warps)`, from `scripts/sweep_ci_kernel.py` on an H100 at
# resid_mlp3's sizes (forward 197 us, backward 342 us per module; the first choice, 64/32/4
# for both, measured 207 and 512 us).
FORWARD_TILE = (64, 32, 2)
BACKWARD_TILE = (32, 64, 2)


def available() -> bool:
    """Whether the kernel can run here (Triton installed and a CUDA device present)."""
    return torch.cuda.is_available() and importlib.util.find_spec("triton") is not None


@functools.cache
def _kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def forward_kernel(
        a_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr, N, C, H,
        BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
    ):  # fmt: skip
        rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        rc = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        mc = rc < C
        mask = (rn < N)[:, None] & mc[None, :]
        offs = rn[:, None] * C + rc[None, :]
        a = tl.load(a_ptr + offs, mask=mask, other=0.0)
        acc = tl.zeros((BLOCK_N, BLOCK_C), dtype=tl.float32)
        for h in range(H):  # weights are stored (H, C): one contiguous row per h
            w1 = tl.load(w1_ptr + h * C + rc, mask=mc, other=0.0)
            b1 = tl.load(b1_ptr + h * C + rc, mask=mc, other=0.0)
            w2 = tl.load(w2_ptr + h * C + rc, mask=mc, other=0.0)
            p = a * w1[None, :] + b1[None, :]
            gelu = p * 0.5 * (1.0 + tl.math.erf(p * 0.7071067811865476))
            acc += gelu * w2[None, :]
        acc += tl.load(b2_ptr + rc, mask=mc, other=0.0)[None, :]
        tl.store(out_ptr + offs, acc, mask=mask)

    @triton.jit
    def backward_kernel(
        a_ptr, go_ptr, w1_ptr, b1_ptr, w2_ptr, da_ptr, pw1_ptr, pb1_ptr, pw2_ptr, N, C, H,
        BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
    ):  # fmt: skip
        tile = tl.program_id(0)
        rn = tile * BLOCK_N + tl.arange(0, BLOCK_N)
        rc = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        mc = rc < C
        mask = (rn < N)[:, None] & mc[None, :]
        offs = rn[:, None] * C + rc[None, :]
        # Rows past N load a = go = 0, so they add nothing to the partial sums.
        a = tl.load(a_ptr + offs, mask=mask, other=0.0)
        go = tl.load(go_ptr + offs, mask=mask, other=0.0)
        da = tl.zeros((BLOCK_N, BLOCK_C), dtype=tl.float32)
        for h in range(H):
            w1 = tl.load(w1_ptr + h * C + rc, mask=mc, other=0.0)
            b1 = tl.load(b1_ptr + h * C + rc, mask=mc, other=0.0)
            w2 = tl.load(w2_ptr + h * C + rc, mask=mc, other=0.0)
            p = a * w1[None, :] + b1[None, :]
            cdf = 0.5 * (1.0 + tl.math.erf(p * 0.7071067811865476))
            pdf = tl.exp(-0.5 * p * p) * 0.3989422804014327
            dp = go * w2[None, :] * (cdf + p * pdf)  # d gelu(p) / dp = cdf + p * pdf
            da += dp * w1[None, :]
            part = tile * H * C + h * C + rc  # partials stored (tiles, H, C)
            tl.store(pw1_ptr + part, tl.sum(dp * a, axis=0), mask=mc)
            tl.store(pb1_ptr + part, tl.sum(dp, axis=0), mask=mc)
            tl.store(pw2_ptr + part, tl.sum(go * (p * cdf), axis=0), mask=mc)
        tl.store(da_ptr + offs, da, mask=mask)

    return triton.cdiv, forward_kernel, backward_kernel


def _rows(w: Tensor) -> Tensor:
    """`(C, H)` -> contiguous fp32 `(H, C)`: each `h` of the kernel's loop reads one row."""
    return w.float().t().contiguous()


@torch.library.custom_op("trainfast::ci_mlp", mutates_args=(), device_types="cuda")
def ci_mlp(acts: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """`sum_h gelu(acts[:, c] * w1[c, h] + b1[c, h]) * w2[c, h] + b2[c]` for `acts` `(N, C)`.

    `w1`, `b1`, `w2` are `(C, H)`, `b2` is `(C,)`. Differentiable in every input.
    """
    cdiv, forward_kernel, _ = _kernels()
    n, c = acts.shape
    h = w1.shape[1]
    a = acts.float().contiguous()
    out = torch.empty_like(a)
    block_n, block_c, warps = FORWARD_TILE
    forward_kernel[(cdiv(n, block_n), cdiv(c, block_c))](
        a, _rows(w1), _rows(b1), _rows(w2), b2.float().contiguous(), out, n, c, h,
        BLOCK_N=block_n, BLOCK_C=block_c, num_warps=warps,
    )  # fmt: skip
    return out.to(acts.dtype)


@ci_mlp.register_fake
def _(acts: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    return torch.empty_like(acts)


@torch.library.custom_op("trainfast::ci_mlp_backward", mutates_args=(), device_types="cuda")
def ci_mlp_backward(
    grad: Tensor, acts: Tensor, w1: Tensor, b1: Tensor, w2: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of `ci_mlp` with respect to `(acts, w1, b1, w2, b2)`."""
    cdiv, _, backward_kernel = _kernels()
    n, c = acts.shape
    h = w1.shape[1]
    a = acts.float().contiguous()
    go = grad.float().contiguous()
    block_n, block_c, warps = BACKWARD_TILE
    tiles = cdiv(n, block_n)
    da = torch.empty_like(a)
    partials = torch.empty(3, tiles, h, c, device=a.device, dtype=torch.float32)
    backward_kernel[(tiles, cdiv(c, block_c))](
        a, go, _rows(w1), _rows(b1), _rows(w2), da, partials[0], partials[1], partials[2],
        n, c, h, BLOCK_N=block_n, BLOCK_C=block_c, num_warps=warps,
    )  # fmt: skip
    # Outputs of a custom op must not alias each other: one contiguous (C, H) copy each.
    dw1, db1, dw2 = (x.t().contiguous() for x in partials.sum(1))
    return (
        da.to(acts.dtype),
        dw1.to(w1.dtype),
        db1.to(b1.dtype),
        dw2.to(w2.dtype),
        go.sum(0).to(w2.dtype),
    )


@ci_mlp_backward.register_fake
def _(grad, acts, w1, b1, w2):
    return (
        torch.empty_like(acts),
        torch.empty_like(w1),
        torch.empty_like(b1),
        torch.empty_like(w2),
        w2.new_empty(w2.shape[0]),
    )


def _setup_context(ctx, inputs, output) -> None:
    acts, w1, b1, w2, _ = inputs
    ctx.save_for_backward(acts, w1, b1, w2)


def _backward(ctx, grad: Tensor):
    return ci_mlp_backward(grad, *ctx.saved_tensors)


ci_mlp.register_autograd(_backward, setup_context=_setup_context)
