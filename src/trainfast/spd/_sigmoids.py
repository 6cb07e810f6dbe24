"""Leaky-hard sigmoids that turn causal-importance pre-activations into masks and penalties.

`lower_leaky` is used for masks (values must stay in [0, 1]); its custom backward lets a small
gradient through below 0 only when it would push the value up, so dead components can revive.
`upper_leaky` is used in the importance-minimality penalty and keeps a 0.01 slope above 1.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


_LEAK = 0.01


class _LowerLeakyHard(torch.autograd.Function):
    """Forward `clamp(x, 0, 1)`; backward leaks 0.01 of negative gradients below 0."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        below = x <= 0
        inside = (x > 0) & (x <= 1)
        # Below 0 only a *negative* gradient passes (scaled): descent then raises x towards the
        # active region, while a positive gradient would push it further into the dead zone.
        leak = torch.where(grad < 0, _LEAK * grad, torch.zeros_like(grad))
        return torch.where(below, leak, torch.where(inside, grad, torch.zeros_like(grad)))


def lower_leaky(x: Tensor) -> Tensor:
    """Mask sigmoid: `clamp(x, 0, 1)` with the leaky custom backward."""
    return _LowerLeakyHard.apply(x)


def upper_leaky(x: Tensor) -> Tensor:
    """Penalty sigmoid: `clamp(x, 0, 1)` below 1, `1 + 0.01 (x - 1)` above (plain autograd)."""
    return torch.where(x > 1, 1 + _LEAK * (x - 1), x.clamp(0.0, 1.0))


def hard_sigmoid(x: Tensor) -> Tensor:
    """`clamp(x, 0, 1)` with ordinary autograd (the `hard` sigmoid type)."""
    return x.clamp(0.0, 1.0)


SIGMOID_TYPES: tuple[str, ...] = ("leaky_hard", "hard", "normal")


def sigmoid_pair(sigmoid_type: str) -> tuple[Any, Any]:
    """Return `(lower, upper)` functions for a sigmoid type.

    Raises:
        ValueError: unknown `sigmoid_type`.
    """
    if sigmoid_type == "leaky_hard":
        return lower_leaky, upper_leaky
    if sigmoid_type == "hard":
        return hard_sigmoid, hard_sigmoid
    if sigmoid_type == "normal":
        return torch.sigmoid, torch.sigmoid
    raise ValueError(f"unknown sigmoid_type {sigmoid_type!r}; known: {', '.join(SIGMOID_TYPES)}")
