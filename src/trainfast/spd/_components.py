"""Rank-one component layers and the causal-importance (CI) functions that gate them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from . import _ci_kernel


class LinearComponents(nn.Module):
    """`C` rank-one components that together stand in for one `nn.Linear`.

    Component `c` is the outer product `V[:, c] ⊗ U[c, :]`; their sum `(V @ U)^T` approximates
    the target weight `(d_out, d_in)`. The target bias is copied into a frozen buffer.

    Args:
        d_in: input width of the replaced Linear.
        d_out: output width.
        C: number of components (> 0).
        bias: the target bias to copy, or `None`.
        fused_unmasked: with no mask, no delta and no cache, use `x @ (V @ U)` (one GEMM against
            the rebuilt weight) instead of `(x @ V) @ U`. Reassociation changes rounding.
    """

    def __init__(
        self, d_in: int, d_out: int, C: int, bias: Tensor | None, *, fused_unmasked: bool = False
    ):
        super().__init__()
        if C <= 0:
            raise ValueError(f"C must be a positive number of components, got C={C}")
        self.d_in, self.d_out, self.C = d_in, d_out, C
        self.fused_unmasked = fused_unmasked
        self.V = nn.Parameter(torch.empty(d_in, C))
        self.U = nn.Parameter(torch.empty(C, d_out))
        # Kaiming normal with linear gain: std = 1/sqrt(fan); fan is d_in for V and C for U.
        with torch.no_grad():
            self.V.normal_(0.0, 1.0 / math.sqrt(d_in))
            self.U.normal_(0.0, 1.0 / math.sqrt(C))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @property
    def weight(self) -> Float[Tensor, "d_out d_in"]:
        """The weight the components add up to, `(V @ U)^T`, on the autograd graph."""
        return torch.einsum("ic,co->oi", self.V, self.U)

    def get_component_acts(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... C"]:
        """Component activations `x @ V` (the input of the `mlp` CI function)."""
        return x.to(self.V.dtype) @ self.V

    def forward(
        self,
        x: Float[Tensor, "... d_in"],
        mask: Float[Tensor, "... C"] | None = None,
        weight_delta_and_mask: tuple[Float[Tensor, "d_out d_in"], Float[Tensor, " *batch"]]
        | None = None,
        component_acts_cache: dict[str, Tensor] | None = None,
    ) -> Float[Tensor, "... d_out"]:
        """Masked forward: `((x @ V) * mask) @ U + m_delta * (x @ delta^T) + bias`.

        Args:
            x: module input.
            mask: per-component mask in [0, 1], shape `(..., C)` or `(C,)`; `None` = all ones.
            weight_delta_and_mask: `(delta, m)`; delta is `W_target - weight`, `m` one scalar
                per example/position. Adds the residual as a (C+1)-th component.
            component_acts_cache: if given, receives `pre_detach` and `post_detach` acts.
        """
        if (
            self.fused_unmasked
            and mask is None
            and weight_delta_and_mask is None
            and component_acts_cache is None
        ):
            out = x.to(self.V.dtype) @ (self.V @ self.U)
        else:
            acts = self.get_component_acts(x)
            if component_acts_cache is not None:
                component_acts_cache["pre_detach"] = acts
                acts = acts.detach().requires_grad_(True)
                component_acts_cache["post_detach"] = acts
            if mask is not None:
                acts = acts * mask
            out = acts @ self.U
        if weight_delta_and_mask is not None:
            delta, delta_mask = weight_delta_and_mask
            out = out + (x @ delta.T) * delta_mask[..., None]
        if self.bias is not None:
            out = out + self.bias
        return out


@dataclass
class MaskInfo:
    """What to do at one decomposed module in a masked forward.

    Attributes:
        component_mask: `(..., C)` mask, or `None` for all ones.
        weight_delta_and_mask: `(delta, m_delta)` or `None` (no delta component).
        routing_mask: `"all"` (every position uses the components) or a bool `(...)` mask:
            positions where it is `False` keep the target's output.
    """

    component_mask: Tensor | None
    weight_delta_and_mask: tuple[Tensor, Tensor] | None = None
    routing_mask: Tensor | str = "all"


_RELU_GAIN = math.sqrt(2.0)
"""Kaiming gain of the hidden CI-function layers (upstream: ReLU's, though GELU follows)."""
_LINEAR_GAIN = 1.0
"""Kaiming gain of the last CI-function layer, which no nonlinearity follows (upstream)."""


def _ci_widths(d_in: int, hidden: tuple[int, ...], d_out: int) -> list[tuple[int, int, float]]:
    """`(in, out, gain)` per CI-function layer: ReLU gain, except linear for the last."""
    widths = (d_in, *hidden, d_out)
    n = len(widths) - 1
    return [
        (a, b, _LINEAR_GAIN if i == n - 1 else _RELU_GAIN)
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))
    ]


class StackedLinear(nn.Module):
    """`C` independent Linears, their weights stacked: `(..., C, i) -> (..., C, o)`.

    (Not tensor parallelism: that is `trainfast.eqx`'s `ParallelLinear`.)

    Weights are Kaiming normal with fan `i` and the given `gain`; biases start at zero.

    Attributes:
        pointwise: write the degenerate widths (`i == 1` or `o == 1`) as broadcast multiply
            (and sum) instead of an einsum. Same math, different summation order. Set by the
            `fused_ci_fn` flag, for `torch.compile`: an einsum becomes a batched GEMM with K=1 or N=1 that must
            materialize its `(..., C, hidden)` output, whereas the pointwise form lets Inductor
            fuse a whole `1 -> hidden -> 1` CI MLP (and its backward, by recomputation) into
            reductions that never write the `B*C*hidden` intermediates (resid_mlp3: 2048*500*128
            floats per layer).
    """

    def __init__(self, C: int, d_in: int, d_out: int, *, gain: float = _RELU_GAIN):
        super().__init__()
        self.W = nn.Parameter(torch.empty(C, d_in, d_out))
        self.b = nn.Parameter(torch.zeros(C, d_out))
        self.pointwise = False
        with torch.no_grad():
            self.W.normal_(0.0, gain / math.sqrt(d_in))  # Kaiming normal, fan-in

    def forward(self, x: Float[Tensor, "... C i"]) -> Float[Tensor, "... C o"]:
        d_in, d_out = self.W.shape[1], self.W.shape[2]
        if self.pointwise and d_in == 1:
            return x * self.W[:, 0, :] + self.b
        if self.pointwise and d_out == 1:
            return (x * self.W[:, :, 0]).sum(-1, keepdim=True) + self.b
        return torch.einsum("...ci,cio->...co", x, self.W) + self.b


class MLPCiFn(nn.Module):
    """`mlp` CI function: per-component scalar MLPs on the component acts `x @ V`.

    Intermediates are `(..., C, hidden)`, which dominates resid_mlp3's GPU time.

    Attributes:
        fused: with one hidden layer and CUDA inputs, evaluate the MLP and its backward with
            the fused kernel of `_ci_kernel` (no `(..., C, hidden)` tensor is ever written).
            Set by the `fused_ci_fn` flag where the kernel can run (CUDA and Triton present);
            the flag also makes the layers `pointwise` for every other case (CPU tensors,
            deeper MLPs).
    """

    def __init__(self, C: int, hidden: tuple[int, ...]):
        super().__init__()
        self.layers = nn.ModuleList(
            StackedLinear(C, a, b, gain=g) for a, b, g in _ci_widths(1, hidden, 1)
        )
        self.fused = False

    def forward(self, acts: Float[Tensor, "... C"]) -> Float[Tensor, "... C"]:
        if self.fused and acts.is_cuda and len(self.layers) == 2:
            first, second = self.layers
            C, H = first.W.shape[0], first.W.shape[2]
            out = _ci_kernel.ci_mlp(
                acts.reshape(-1, C),
                first.W.reshape(C, H),
                first.b,
                second.W.reshape(C, H),
                second.b.reshape(C),
            )
            return out.reshape(acts.shape)
        h = acts.unsqueeze(-1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = F.gelu(h)
        return h.squeeze(-1)


class VectorMLPCiFn(nn.Module):
    """`vector_mlp` CI function: per-component MLPs reading the whole module input."""

    def __init__(self, C: int, d_in: int, hidden: tuple[int, ...]):
        super().__init__()
        self.C = C
        self.layers = nn.ModuleList(
            StackedLinear(C, a, b, gain=g) for a, b, g in _ci_widths(d_in, hidden, 1)
        )

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... C"]:
        h = x.unsqueeze(-2).expand(*x.shape[:-1], self.C, x.shape[-1])
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = F.gelu(h)
        return h.squeeze(-1)


class SharedMLPCiFn(nn.Module):
    """`shared_mlp` CI function: one ordinary MLP `d_in -> hidden... -> C`."""

    def __init__(self, C: int, d_in: int, hidden: tuple[int, ...]):
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b, gain in _ci_widths(d_in, hidden, C):
            self.weights.append(nn.Parameter(torch.randn(a, b) * (gain / math.sqrt(a))))
            self.biases.append(nn.Parameter(torch.zeros(b)))

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... C"]:
        h = x
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if i < n - 1:
                h = F.gelu(h)
        return h


CI_FN_TYPES: tuple[str, ...] = ("mlp", "vector_mlp", "shared_mlp")


def make_ci_fn(ci_fn_type: str, C: int, d_in: int, hidden: tuple[int, ...]) -> nn.Module:
    """Build the CI function named by `ci_fn_type` for one module.

    Raises:
        ValueError: unknown `ci_fn_type`.
    """
    if ci_fn_type == "mlp":
        return MLPCiFn(C, hidden)
    if ci_fn_type == "vector_mlp":
        return VectorMLPCiFn(C, d_in, hidden)
    if ci_fn_type == "shared_mlp":
        return SharedMLPCiFn(C, d_in, hidden)
    raise ValueError(f"unknown ci_fn_type {ci_fn_type!r}; known: {', '.join(CI_FN_TYPES)}")
