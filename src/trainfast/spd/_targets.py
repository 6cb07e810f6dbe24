"""Toy target models (TMS, ResidMLP) and their synthetic data, each with its own generator.

Every target's `forward(x, sub=None)` calls `sub(name, h, linear)` at each decomposable Linear
when `sub` is given; that is what the `explicit_forward` flag uses instead of hooks. With
`sub=None` it is an ordinary module, so forward hooks work as they would on any model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn


Sub = Callable[[str, Tensor, nn.Linear], Tensor]


class TMSModel(nn.Module):
    """Toy model of superposition: `relu(linear2(linear1(x)))` with `linear2.W = linear1.W^T`."""

    def __init__(self, n_features: int, n_hidden: int):
        super().__init__()
        self.linear1 = nn.Linear(n_features, n_hidden, bias=False)
        self.linear2 = nn.Linear(n_hidden, n_features, bias=True)
        with torch.no_grad():  # tied weights, as in the trained TMS targets
            self.linear2.weight.copy_(self.linear1.weight.T)

    def forward(
        self, x: Float[Tensor, "batch n_features"], sub: Sub | None = None
    ) -> Float[Tensor, "batch n_features"]:
        call = sub or (lambda name, h, linear: linear(h))
        h = call("linear1", x, self.linear1)
        return F.relu(call("linear2", h, self.linear2))


class _ResidLayer(nn.Module):
    def __init__(self, d_embed: int, d_mlp: int, bias: bool):
        super().__init__()
        self.mlp_in = nn.Linear(d_embed, d_mlp, bias=bias)
        self.mlp_out = nn.Linear(d_mlp, d_embed, bias=bias)


class ResidMLPModel(nn.Module):
    """Residual MLP: embed, `L` blocks `resid += mlp_out(relu(mlp_in(resid)))`, unembed.

    As upstream's trained targets: `W_E` random with unit-norm rows (fixed, never trained),
    `W_U = W_E^T`, and MLP Linears without biases unless `bias=True`.
    """

    def __init__(
        self, n_features: int, d_embed: int, d_mlp: int, n_layers: int, *, bias: bool = False
    ):
        super().__init__()
        w_e = torch.randn(n_features, d_embed)
        w_e = w_e / w_e.norm(dim=-1, keepdim=True)  # unit-norm feature directions
        self.W_E = nn.Parameter(w_e)
        self.W_U = nn.Parameter(w_e.T.clone())
        self.layers = nn.ModuleList(_ResidLayer(d_embed, d_mlp, bias) for _ in range(n_layers))

    def forward(
        self, x: Float[Tensor, "batch n_features"], sub: Sub | None = None
    ) -> Float[Tensor, "batch n_features"]:
        call = sub or (lambda name, h, linear: linear(h))
        resid = x @ self.W_E
        for i, layer in enumerate(self.layers):
            h = F.relu(call(f"layers.{i}.mlp_in", resid, layer.mlp_in))
            resid = resid + call(f"layers.{i}.mlp_out", h, layer.mlp_out)
        return resid @ self.W_U


class SparseFeatureData:
    """Batches of sparse features: each active with probability `p`, value `U[lo, hi]`.

    Uses its own `torch.Generator`, so data never consumes the global RNG that draws the
    stochastic masks (upstream shares it, which makes any prefetching change the masks).

    Args:
        n_features: width of a batch row.
        batch_size: rows per batch.
        p: probability that a feature is active.
        value_range: `(lo, hi)` of active values.
        seed: generator seed.
        device: where batches are generated (the GPU for toys, as upstream does).
    """

    def __init__(
        self,
        n_features: int,
        batch_size: int,
        p: float,
        value_range: tuple[float, float],
        seed: int,
        device: str | torch.device,
    ):
        self.n_features, self.batch_size, self.p = n_features, batch_size, p
        self.lo, self.hi = value_range
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def next(self) -> Float[Tensor, "batch n_features"]:
        """Generate one batch on `self.device`."""
        shape = (self.batch_size, self.n_features)
        kw = {"generator": self.generator, "device": self.device}
        active = torch.rand(shape, **kw) < self.p
        values = torch.rand(shape, **kw) * (self.hi - self.lo) + self.lo
        return values * active

    def __iter__(self) -> Iterator[Tensor]:
        while True:
            yield self.next()


class Prefetcher:
    """Produce batch `k + 1` while step `k` runs; same batches, same order.

    On CUDA the next batch is generated (or copied from pinned host memory with
    `non_blocking=True`) on a side stream; the consumer's stream waits on it before use and the
    tensor is marked as used there so the caching allocator does not recycle it early.
    On CPU there is nothing to overlap, and the iterator simply runs one batch ahead.

    Args:
        source: yields batches (on any device).
        device: where the consumer wants them.
    """

    def __init__(self, source: Iterator[Tensor], device: str | torch.device):
        self.source = source
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self._next = self._produce()

    def _produce(self) -> Tensor:
        if not self.cuda:
            return next(self.source).to(self.device)
        with torch.cuda.stream(self.stream):
            batch = next(self.source)
            if batch.device.type == "cpu":
                batch = batch.pin_memory().to(self.device, non_blocking=True)
            return batch

    def __iter__(self) -> Iterator[Tensor]:
        return self

    def __next__(self) -> Tensor:
        batch = self._next
        if self.cuda:
            current = torch.cuda.current_stream(self.device)
            current.wait_stream(self.stream)
            batch.record_stream(current)
        self._next = self._produce()
        return batch
