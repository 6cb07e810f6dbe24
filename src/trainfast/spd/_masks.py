"""Random numbers for masks, the stochastic masks themselves and the subset router.

Every random draw of a training step goes through a `Noise` object, in upstream order. The
baseline draws live from the global RNG (`LiveNoise`). Compiled steps need the same numbers
without calling the RNG inside the compiled region (Inductor would switch to its own Philox
stream): `RecordingNoise` learns the sequence of draws once, and `PredrawnNoise` replays that
plan from tensors drawn up front in the same order, which yields the very same values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from ._components import MaskInfo


@dataclass(frozen=True)
class Draw:
    """One random draw: `kind` is `"rand"` or `"randint"`; `high` is randint's bound."""

    kind: str
    shape: tuple[int, ...]
    low: int = 0
    high: int = 0


class LiveNoise:
    """Draw from the global RNG on `device`, exactly as upstream does."""

    def __init__(self, device: torch.device):
        self.device = device

    def rand(self, shape: tuple[int, ...]) -> Tensor:
        return torch.rand(shape, device=self.device)

    def randint(self, low: int, high: int, shape: tuple[int, ...]) -> Tensor:
        return torch.randint(low, high, shape, device=self.device)


class RecordingNoise(LiveNoise):
    """`LiveNoise` that also records the plan of draws (kinds and shapes, in order)."""

    def __init__(self, device: torch.device):
        super().__init__(device)
        self.plan: list[Draw] = []

    def rand(self, shape: tuple[int, ...]) -> Tensor:
        self.plan.append(Draw("rand", tuple(shape)))
        return super().rand(shape)

    def randint(self, low: int, high: int, shape: tuple[int, ...]) -> Tensor:
        self.plan.append(Draw("randint", tuple(shape), low, high))
        return super().randint(low, high, shape)


def predraw(plan: list[Draw], device: torch.device) -> list[Tensor]:
    """Draw every tensor of `plan` now, in order, from the global RNG (same values as live)."""
    return [
        torch.rand(d.shape, device=device)
        if d.kind == "rand"
        else torch.randint(d.low, d.high, d.shape, device=device)
        for d in plan
    ]


class PredrawnNoise:
    """Serve pre-drawn tensors in order; a plan mismatch is a bug and raises."""

    def __init__(self, tensors: list[Tensor], plan: list[Draw]):
        self.tensors, self.plan, self.i = tensors, plan, 0

    def _take(self, kind: str, shape: tuple[int, ...]) -> Tensor:
        d = self.plan[self.i]
        if d.kind != kind or d.shape != tuple(shape):
            raise RuntimeError(f"noise plan mismatch at draw {self.i}: {d} vs {kind}{shape}")
        t = self.tensors[self.i]
        self.i += 1
        return t

    def rand(self, shape: tuple[int, ...]) -> Tensor:
        return self._take("rand", shape)

    def randint(self, low: int, high: int, shape: tuple[int, ...]) -> Tensor:
        return self._take("randint", shape)


Noise = LiveNoise | PredrawnNoise


def stochastic_mask_infos(
    ci_lower: dict[str, Float[Tensor, "... C"]],
    weight_deltas: dict[str, Tensor] | None,
    noise: Noise,
    sampling: str,
    routing: dict[str, Bool[Tensor, " *batch"]] | None = None,
) -> dict[str, MaskInfo]:
    """One set of stochastic masks: `mask = ci + (1 - ci) * r` per layer, then delta masks.

    RNG order as upstream: first `r` for every layer, then `m_delta ~ U[0, 1]` for every layer.
    """
    masks = {}
    for name, ci in ci_lower.items():
        if sampling == "binomial":
            r = noise.randint(0, 2, tuple(ci.shape)).to(ci.dtype)
        else:
            r = noise.rand(tuple(ci.shape)).to(ci.dtype)
        masks[name] = ci + (1 - ci) * r
    deltas: dict[str, tuple[Tensor, Tensor] | None] = dict.fromkeys(ci_lower)
    if weight_deltas is not None:
        for name, ci in ci_lower.items():
            deltas[name] = (weight_deltas[name], noise.rand(tuple(ci.shape[:-1])))
    return {
        name: MaskInfo(
            masks[name],
            deltas[name],
            "all" if routing is None else routing[name],
        )
        for name in ci_lower
    }


def uniform_k_subset_routing(
    names: list[str], leading_shape: tuple[int, ...], noise: Noise
) -> dict[str, Bool[Tensor, " *batch"]]:
    """Per position, route a uniformly random `k`-subset of layers, `k ~ U{1..L}`.

    The subset comes from the rank of each layer in a random permutation (double argsort of
    uniform noise): layer `l` is routed where its rank is below `k`.
    """
    n_layers = len(names)
    k = noise.randint(1, n_layers + 1, leading_shape)
    ranks = noise.rand((*leading_shape, n_layers)).argsort(dim=-1).argsort(dim=-1)
    routed = ranks < k[..., None]
    return {name: routed[..., i] for i, name in enumerate(names)}
