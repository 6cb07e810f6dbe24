"""Time the fused CI kernel (forward, backward) for a few tile shapes on resid_mlp3's sizes.

python scripts/sweep_ci_kernel.py        # needs CUDA and Triton
"""

from __future__ import annotations

import itertools

import torch

from trainfast.spd import _ci_kernel as k


def time_ms(fn, reps: int = 200) -> float:
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def main() -> None:
    n, c, h = 2048, 500, 128
    g = torch.Generator(device="cuda").manual_seed(0)
    acts, grad = (torch.randn(n, c, device="cuda", generator=g) for _ in range(2))
    w1, b1, w2 = (torch.randn(c, h, device="cuda", generator=g) for _ in range(3))
    b2 = torch.randn(c, device="cuda", generator=g)
    for bn, bc, warps in itertools.product((32, 64, 128), (16, 32, 64), (2, 4, 8)):
        k.FORWARD_TILE = k.BACKWARD_TILE = (bn, bc, warps)
        fwd = time_ms(lambda: k.ci_mlp(acts, w1, b1, w2, b2))
        bwd = time_ms(lambda: k.ci_mlp_backward(grad, acts, w1, b1, w2))
        print(f"BLOCK_N={bn:4d} BLOCK_C={bc:3d} warps={warps}: fwd {1e3 * fwd:6.1f} us, "
              f"bwd {1e3 * bwd:6.1f} us", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
