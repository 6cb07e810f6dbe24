"""The fused CI-function kernel (`fused_ci_fn` on CUDA) against the tensor formulation."""

from __future__ import annotations

import pytest
import torch

from trainfast.spd import Flags
from trainfast.spd._ci_kernel import available, ci_mlp
from trainfast.spd._components import MLPCiFn


pytestmark = pytest.mark.skipif(not available(), reason="needs CUDA and Triton")


def _reference(fn: MLPCiFn, acts: torch.Tensor) -> torch.Tensor:
    fn.fused = False
    try:
        return fn(acts)
    finally:
        fn.fused = True


@pytest.mark.parametrize(
    ("n", "C", "hidden"),
    [(37, 13, 5), (2048, 500, 128), (64, 32, 16), (3, 200, 16)],  # ragged tiles; resid_mlp3; toys
)
def test_values_and_gradients_match_the_tensor_version(n, C, hidden) -> None:
    torch.manual_seed(0)
    fn = MLPCiFn(C, (hidden,)).cuda().double()
    with torch.no_grad():
        for layer in fn.layers:
            layer.b.normal_()  # the zero init would leave the bias paths untested
    acts = torch.randn(n, C, device="cuda", dtype=torch.float64, requires_grad=True)
    ref = _reference(fn, acts)  # float64: the kernel's fp32 error is what is measured
    grad_out = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, [acts, *fn.parameters()], grad_out)

    fn32 = fn.float()
    fn32.fused = True
    acts32 = acts.detach().float().requires_grad_()
    got = fn32(acts32)
    got_grads = torch.autograd.grad(got, [acts32, *fn32.parameters()], grad_out.float())
    torch.testing.assert_close(got.double(), ref.detach(), rtol=1e-4, atol=1e-4)
    for g, r in zip(got_grads, ref_grads):
        # Sums over n run in another order in fp32; tolerance scales with the sum's size.
        torch.testing.assert_close(g.double(), r, rtol=1e-4, atol=1e-4 * max(1.0, n / 64))


def test_the_op_is_registered_correctly_for_autograd_and_compile() -> None:
    torch.manual_seed(0)
    C, H = 11, 6
    args = (
        torch.randn(9, C, device="cuda", requires_grad=True),
        torch.randn(C, H, device="cuda", requires_grad=True),
        torch.randn(C, H, device="cuda", requires_grad=True),
        torch.randn(C, H, device="cuda", requires_grad=True),
        torch.randn(C, device="cuda", requires_grad=True),
    )
    torch.library.opcheck(ci_mlp, args)


# Shown, not raised: Inductor imports torch.jit code that warns (DeprecationWarning) while it
# compiles, and a raised warning aborts compilation (as in test_perf_spd's CUDA tests).
@pytest.mark.filterwarnings("default")
def test_leading_dims_and_compile_give_the_same_result() -> None:
    torch.manual_seed(0)
    fn = MLPCiFn(24, (16,)).cuda()
    fn.fused = True
    acts = torch.randn(4, 8, 24, device="cuda")  # (batch, seq, C) as in the IH workload
    eager = fn(acts)
    compiled = torch.compile(fn, fullgraph=True)(acts)
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(eager, _reference(fn, acts), rtol=1e-5, atol=1e-5)


def test_the_flag_switches_the_kernel_on() -> None:
    from trainfast.spd import make_trainer

    trainer = make_trainer("resid_mlp1", flags=Flags(fused_ci_fn=True), device="cuda")
    fns = list(trainer.model.ci_fns.values())
    assert fns
    assert all(fn.fused for fn in fns)
    assert torch.isfinite(trainer.step())
