"""`Packed`: a model whose trainable arrays travel as one buffer per dtype.

Why: a jitted train step takes and returns every array of the model and optimizer state as
its own buffer, and the runtime pays per buffer on every call, before the device starts
(XLA:CPU, 512 donated arrays of 4096 floats: 5.96 ms per waited call; the same bytes in one
array: 0.89 ms). BERT-base has 200 parameter arrays; with `optax.flatten` the optimizer's
moments are already one vector each, so the parameters are what is left. Packed, they are
one vector per dtype; the program unpacks them into the model (slices and reshapes that XLA
fuses into their consumers), and gradients come back as one vector per dtype, so an optimizer
created on the packed model updates each dtype's parameters in one fused pass, without
`optax.flatten`.

Measured on one H200 (BERT-base 12L-768H, 1x8, unrolled, fused AdamW, `cached`; 205 state
buffers unpacked, 4 packed): 5.59 -> 4.18 ms per waited step, 3.82 -> 3.58 ms per step back
to back (docs/train-step-h200.md; the runtime there pays ~4.4 us per donated buffer).
XLA:CPU, BERT-12L tiny widths, quiet 2-core VM: 2.61 -> 1.09 ms per waited step.

`Packed.of(model, wrt)` packs the `wrt` leaves (default: floating-point arrays); every other
leaf stays where it is (`rest`). Optimise the packed model with the filter it was packed with
in mind: `Optimizer.create(tx, packed)` with the default filter optimises the buffers and any
floating-point array left in `rest`. A buffer cannot be sharded like the leaves it holds, so
`Packed` is for one device (or replicated data parallelism), not for tensor-parallel plans.
`packed.unpack()` is the model again, bit for bit: inside a jitted
step (traced, fused) or outside it (one small program per call; use it for evaluation or a
checkpoint, not per step). Any of the three dispatchers of [`make_train_step`][] takes a
`Packed` as its model: `make_train_step(lambda p, *a: loss_fn(p.unpack(), *a))`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np


class Packed(eqx.Module):
    """A model with its `wrt` leaves packed into one flat buffer per dtype.

    Traced: `buffers` (one 1-D array per dtype of the packed leaves, in `dtypes` order) and
    the arrays of `rest`. Static: the tree structure, each packed leaf's shape and place,
    and the non-array leaves, so a step compiles once per model structure, as unpacked.
    """

    buffers: tuple[jax.Array, ...]
    rest: Any
    dtypes: tuple[str, ...] = eqx.field(static=True)
    # Per packed leaf, in leaf order: (buffer index, offset, shape).
    slots: tuple[tuple[int, int, tuple[int, ...]], ...] = eqx.field(static=True)
    packed_mask: tuple[bool, ...] = eqx.field(static=True)
    treedef: Any = eqx.field(static=True)

    @classmethod
    def of(cls, model: Any, wrt: Callable[[Any], bool] = eqx.is_inexact_array) -> Packed:
        """Pack the leaves of `model` selected by `wrt` (a leaf filter, as for `eqx.filter`).

        The buffers are made by one jitted concatenation per dtype, on the device of the
        leaves; the leaves themselves are not kept.
        """
        leaves, treedef = jtu.tree_flatten(model)
        mask = tuple(bool(wrt(x)) for x in leaves)
        dtypes: list[str] = []
        slots, groups, sizes = [], {}, {}
        for x, packed in zip(leaves, mask):
            if not packed:
                continue
            d = str(x.dtype)
            if d not in groups:
                groups[d], sizes[d] = len(dtypes), 0
                dtypes.append(d)
            slots.append((groups[d], sizes[d], tuple(x.shape)))
            sizes[d] += int(np.prod(x.shape, dtype=np.int64))
        chosen = [x for x, packed in zip(leaves, mask) if packed]
        buffers = _concatenate(tuple(chosen), tuple(s[0] for s in slots), len(dtypes))
        rest = [None if packed else x for x, packed in zip(leaves, mask)]
        return cls(tuple(buffers), rest, tuple(dtypes), tuple(slots), mask, treedef)

    def unpack(self) -> Any:
        """The model: each packed leaf sliced out of its buffer and reshaped."""
        # One `split` per buffer, not a slice per leaf: the gradient of a split is one
        # concatenation, that of a slice a zero-padded copy of the whole buffer per leaf
        # (XLA:CPU, BERT-12L tiny: 107 ms per step against 6.6 ms unpacked).
        pieces: list[list[jax.Array]] = []
        for b, buffer in enumerate(self.buffers):
            offsets = [offset for i, offset, _ in self.slots if i == b]
            pieces.append(jnp.split(buffer, offsets[1:]) if offsets else [])
        cursor = [0] * len(self.buffers)

        def take(b: int, shape: tuple[int, ...]) -> jax.Array:
            piece = pieces[b][cursor[b]]
            cursor[b] += 1
            return piece.reshape(shape)

        packed = iter(take(b, shape) for b, _, shape in self.slots)
        leaves = [next(packed) if p else x for x, p in zip(self.rest, self.packed_mask)]
        return jtu.tree_unflatten(self.treedef, leaves)

    @property
    def num_buffers(self) -> int:
        """Arrays a step takes for this model: the buffers and the arrays of `rest`."""
        return len(self.buffers) + sum(1 for x in self.rest if eqx.is_array(x))


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


@jax.jit
def _concat(xs: tuple[jax.Array, ...]) -> jax.Array:
    return jnp.concatenate([jnp.ravel(x) for x in xs])


def _concatenate(leaves: tuple, buffer_of: tuple[int, ...], n: int) -> list[jax.Array]:
    out = []
    for b in range(n):
        out.append(_concat(tuple(x for x, i in zip(leaves, buffer_of) if i == b)))
    return out
