"""Few outputs per jitted creation: stack like leaves inside the program, split them after.

A jitted initialiser returns one output buffer per array leaf, and XLA compiles (and on
XLA:CPU emits) work per output: a BERT with `L` layers has `16 L + 10` leaves, and AdamW's
state twice as many again, so the compile of `make_module_opt`'s creation grows with depth
through its outputs alone (XLA:CPU, tiny widths: ~0.1 s per output). Here the leaves are
grouped by their path with every sequence index replaced by `*` (`layers.*.attention.query.
weight`, `mu.layers.*.attention.query.weight`, ...) plus shape, dtype and sharding; each
group of two or more leaves leaves the program as one stacked array (the new leading axis
unsharded, the rest sharded as the leaf is), so the number of outputs does not depend on the
number of layers. Inside the program, stacking the slices of a `vmap`ped initialiser's
arrays is folded back into those arrays by XLA.

After the program, [`unstack_groups`][] cuts each stacked array into its leaves with one
small jitted `dynamic_slice` per (shape, sharding): the index is an argument, so that
program is compiled once per kind of leaf, not once per layer. Each slice of a sharded
stack is sharded the same way (the sliced axis is the unsharded one), so every device only
ever holds its shards: still no full copy on one device. Transiently, while one group is cut,
that group's bytes exist twice (its stack and its slices); the stack is deleted as soon as
its slices are ready, so the peak is the model and optimizer state plus the largest group (e.g. all layers'
`intermediate.dense.weight` and nothing else).
"""

from __future__ import annotations

import functools as ft
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec


def _path_pattern(path: tuple) -> str:
    # Sequence indices (tuple/list positions: the layer number) become `*`; names and dict
    # keys stay, so `query.weight` and `key.weight` (same shape) are still told apart.
    return "".join("[*]" if isinstance(k, jtu.SequenceKey) else jtu.keystr((k,)) for k in path)


def group_leaves(
    abstract: Any, shardings: Any
) -> tuple[list[list[int]], list[NamedSharding], list[Any], Any]:
    """Group the array leaves of `abstract` that may leave a program as one stack.

    Args:
        abstract: a pytree of `jax.ShapeDtypeStruct` (and `None`) leaves.
        shardings: a pytree of `NamedSharding` with the same leaves as `abstract`.

    Returns:
        `(groups, out_shardings, leaf_shardings, treedef)`: `groups` lists leaf indices (in
        `jax.tree.leaves` order), one list per output; `out_shardings` is each output's
        sharding (a group of several gets a leading unsharded axis); `leaf_shardings` is
        every leaf's own sharding; `treedef` rebuilds the pytree from the leaves.
    """
    with_paths, treedef = jtu.tree_flatten_with_path(abstract)
    leaf_shardings = jtu.tree_leaves(shardings)
    if len(leaf_shardings) != len(with_paths):
        raise ValueError(
            f"`shardings` must have one sharding per array leaf of `abstract`: got "
            f"{len(leaf_shardings)} shardings for {len(with_paths)} leaves."
        )
    by_key: dict[tuple, list[int]] = {}
    for i, ((path, leaf), sharding) in enumerate(zip(with_paths, leaf_shardings)):
        spec = tuple(sharding.spec)
        key = (_path_pattern(path), leaf.shape, str(leaf.dtype), sharding.mesh, spec)
        by_key.setdefault(key, []).append(i)
    groups = list(by_key.values())
    out_shardings = []
    for g in groups:
        sharding = leaf_shardings[g[0]]
        if len(g) > 1:
            sharding = NamedSharding(sharding.mesh, PartitionSpec(None, *sharding.spec))
        out_shardings.append(sharding)
    return groups, out_shardings, leaf_shardings, treedef


def stack_groups(leaves: Sequence[jax.Array], groups: list[list[int]]) -> list[jax.Array]:
    """Inside the jitted program: one output per group (a stack when it has several)."""
    return [leaves[g[0]] if len(g) == 1 else jnp.stack([leaves[i] for i in g]) for g in groups]


@ft.cache
def _take(sharding: NamedSharding):
    # One jitted slice per output sharding; jit then compiles it once per input shape and
    # sharding. `i` is traced, so layer 0 and layer 59 share one executable.
    return jax.jit(
        lambda stack, i: jax.lax.dynamic_index_in_dim(stack, i, keepdims=False),
        out_shardings=sharding,
    )


def unstack_groups(
    outputs: Sequence[jax.Array],
    groups: list[list[int]],
    leaf_shardings: Sequence[NamedSharding],
) -> list[jax.Array]:
    """After the program: the leaves again, in `jax.tree.leaves` order, each sharded as it
    was planned; each stacked output is deleted once cut (see the module docstring)."""
    leaves: list[Any] = [None] * len(leaf_shardings)
    for out, g in zip(outputs, groups):
        if len(g) == 1:
            leaves[g[0]] = out
            continue
        take = _take(leaf_shardings[g[0]])
        for j, i in enumerate(g):
            leaves[i] = take(out, np.int32(j))
        # Free the stack once its slices are made, so the transient extra is one group, not
        # the model. Waiting first costs one sync per kind of leaf (~80 for BERT with
        # AdamW) and does not lean on the runtime deferring the free of a buffer in use.
        jax.block_until_ready([leaves[i] for i in g])
        out.delete()
    return leaves
