"""`make_train_step`: one training step, three dispatch strategies."""

from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.tree_util as jtu
from jaxtyping import PyTree

from ._optimizer import Optimizer


Dispatch = Literal["filter_jit", "partition", "cached"]
LossFn = Callable[..., tuple[Any, Any]]


def _step_body(loss_fn: LossFn) -> Callable:
    """The math every dispatcher traces: gradients of `loss_fn` w.r.t. `opt.wrt`, one update."""

    def body(model: PyTree, opt: Optimizer, *args: Any):
        params, rest = eqx.partition(model, opt.wrt)

        def loss_of_params(p):
            return loss_fn(eqx.combine(p, rest), *args)

        (_, aux), grads = jax.value_and_grad(loss_of_params, has_aux=True)(params)
        model, opt = opt(grads, model)
        return model, opt, aux

    return body


def _filter_jit_step(body: Callable, donate: bool) -> Callable:
    # `eqx.filter_jit` over everything. Arguments are reordered so that
    # "all-except-first" donates exactly the model and optimizer, never the batch.
    @eqx.filter_jit(donate="all-except-first" if donate else "none")
    def jitted(args, state):
        return body(*state, *args)

    def step(model, opt, *args):
        return jitted(args, (model, opt))

    # Like `jax.jit`'s: the executable one call compiles to, for XLA's `memory_analysis()`
    # (`perf.memory(step, model, opt, batch, key)`). Nothing runs, nothing is donated.
    step.lower = lambda model, opt, *args: jitted.lower(args, (model, opt))
    return step


class _PartitionStep:
    """`eqx.partition` into arrays and static parts, `jax.jit` over the arrays, combine.

    The static part is computed on every call (the API takes whole modules) and keys a
    cache of jitted functions that close over it, so a changed structure compiles once.
    """

    def __init__(self, body: Callable, donate: bool):
        self.body = body
        self.donate = donate
        self.cache: dict[Any, Callable] = {}

    def _compile(self, static: Any) -> Callable:
        out_static_cell: list[Any] = []

        def inner(dynamic, args):
            model, opt = eqx.combine(dynamic, static)
            model, opt, aux = self.body(model, opt, *args)
            out_dyn, out_static = eqx.partition((model, opt), eqx.is_array)
            out_static_cell[:] = [out_static]
            return out_dyn, aux

        jitted = jax.jit(inner, donate_argnums=(0,) if self.donate else ())

        def call(dynamic, args):
            out_dyn, aux = jitted(dynamic, args)
            model, opt = eqx.combine(out_dyn, out_static_cell[0])
            return model, opt, aux

        call.jitted = jitted
        return call

    def __call__(self, model, opt, *args):
        dynamic, static = eqx.partition((model, opt), eqx.is_array)
        # Key by structure plus the (hashable) non-array leaves: `Module.__eq__` would
        # compare whole trees on every call.
        leaves, treedef = jtu.tree_flatten(static)
        key = (treedef, tuple(leaves))
        try:
            fn = self.cache[key]
        except KeyError:
            fn = self.cache[key] = self._compile(static)
        return fn(dynamic, args)

    def lower(self, model, opt, *args):
        """Like `jax.jit`'s `lower`: the executable a call compiles to (nothing runs)."""
        dynamic, static = eqx.partition((model, opt), eqx.is_array)
        leaves, treedef = jtu.tree_flatten(static)
        key = (treedef, tuple(leaves))
        fn = self.cache.get(key) or self.cache.setdefault(key, self._compile(static))
        return fn.jitted.lower(dynamic, args)


class _Entry:
    """One compiled structure of `(model, opt)` for the cached dispatcher."""

    __slots__ = ("jitted", "out", "next")

    def __init__(self):
        self.jitted: Callable | None = None
        # Set at trace time: (out_treedef, array positions, static leaves) of the outputs.
        self.out: tuple | None = None
        # The entry for the output structure, resolved on first use.
        self.next: _Entry | None = None


def _split_leaves(leaves: list) -> tuple[list, tuple, tuple]:
    is_arr = tuple(eqx.is_array(x) for x in leaves)
    arrays = [x for x, a in zip(leaves, is_arr) if a]
    statics = tuple(x for x, a in zip(leaves, is_arr) if not a)
    return arrays, is_arr, statics


def _merge_leaves(arrays, is_arr, statics) -> list:
    it_a, it_s = iter(arrays), iter(statics)
    return [next(it_a) if a else next(it_s) for a in is_arr]


class _CachedStep:
    """Flatten once per call, cache by treedef, `jax.jit` over the flat list of arrays.

    When the `model` and `opt` passed in are the very objects the previous call returned,
    their flat leaves and structure are already known: the call skips flattening entirely
    and goes straight to the compiled function (whose C++ fast path only sees a list of
    arrays). Outputs are unflattened once. Nothing blocks, so host and device overlap.
    """

    def __init__(self, body: Callable, donate: bool):
        self.body = body
        self.donate = donate
        self.cache: dict[tuple, _Entry] = {}
        # (model, opt, arrays, entry) returned by the previous call; strong references, so
        # `is` cannot be fooled by a recycled id.
        self.last: tuple | None = None

    def _entry(self, key: tuple) -> _Entry:
        entry = self.cache.get(key)
        if entry is None:
            entry = self.cache[key] = _Entry()
            treedef, is_arr, statics = key
            body = self.body

            def inner(arrays, args):
                model, opt = jtu.tree_unflatten(treedef, _merge_leaves(arrays, is_arr, statics))
                model, opt, aux = body(model, opt, *args)
                out_leaves, out_treedef = jtu.tree_flatten((model, opt))
                out_arrays, out_is_arr, out_statics = _split_leaves(out_leaves)
                entry.out = (out_treedef, out_is_arr, out_statics)
                entry.next = None
                return out_arrays, aux

            entry.jitted = jax.jit(inner, donate_argnums=(0,) if self.donate else ())
        return entry

    def __call__(self, model, opt, *args):
        last = self.last
        if last is not None and model is last[0] and opt is last[1]:
            arrays, entry = last[2], last[3]
        else:
            leaves, treedef = jtu.tree_flatten((model, opt))
            arrays, is_arr, statics = _split_leaves(leaves)
            try:
                entry = self._entry((treedef, is_arr, statics))
            except TypeError as e:  # an unhashable non-array leaf
                raise TypeError(
                    "`make_train_step(dispatch='cached')`: every non-array leaf of the model "
                    "and optimizer must be hashable (it becomes part of the cache key); "
                    f"got: {e}"
                ) from None
        self.last = None  # never hold on to donated inputs if the call raises
        out_arrays, aux = entry.jitted(arrays, args)
        out_treedef, out_is_arr, out_statics = entry.out
        nxt = entry.next
        if nxt is None:
            nxt = entry.next = self._entry(entry.out)
        # All-array outputs (the usual case) need no merging with static leaves.
        leaves = _merge_leaves(out_arrays, out_is_arr, out_statics) if out_statics else out_arrays
        new_model, new_opt = jtu.tree_unflatten(out_treedef, leaves)
        self.last = (new_model, new_opt, out_arrays, nxt)
        return new_model, new_opt, aux

    def lower(self, model, opt, *args):
        """Like `jax.jit`'s `lower`: the executable a call compiles to (nothing runs)."""
        leaves, treedef = jtu.tree_flatten((model, opt))
        arrays, is_arr, statics = _split_leaves(leaves)
        return self._entry((treedef, is_arr, statics)).jitted.lower(arrays, args)


def make_train_step(
    loss_fn: LossFn,
    *,
    dispatch: Dispatch = "cached",
    donate: bool = True,
) -> Callable[..., tuple[PyTree, Optimizer, Any]]:
    """Build `step(model, opt, *args) -> (model, opt, aux)`.

    The step computes `(loss, aux), grads = value_and_grad(loss_fn, has_aux=True)` with
    respect to the leaves of `model` selected by `opt.wrt`, then `model, opt = opt(grads,
    model)`. All dispatchers trace the same function and give the same results; they differ
    only in host-side cost per call.

    Args:
        loss_fn: `loss_fn(model, *args) -> (loss, aux)`; traced once per structure.
        dispatch:
            - `"filter_jit"`: `eqx.filter_jit` over everything (the Equinox default). It
              partitions and recombines on every call and blocks until the outputs are
              ready, so host and device never overlap. Non-array `args` are static.
            - `"partition"`: `eqx.partition` into arrays and static parts on each call,
              `jax.jit` over the arrays (closing over the static part, combined inside),
              `eqx.combine` on the outputs. Does not block.
            - `"cached"` (default): one flatten per call (none when `model`/`opt` are the
              objects the previous call returned), a treedef-keyed cache, `jax.jit` over
              the flat list of arrays. Does not block: dispatch is asynchronous.
        donate: donate the input model and optimizer arrays (all dispatchers). After a
            call, the `model` and `opt` passed in must not be used again; `args` (the
            batch, keys) are never donated.

    For `"partition"` and `"cached"`, `args` are traced with `jax.jit` semantics (arrays or
    pytrees of arrays). Traced: every array leaf of `model`, `opt` and `args`. Static: the
    treedefs and non-array leaves of `model` and `opt` (e.g. `opt.tx`, `opt.wrt`, the
    model's config); a change there compiles once more and is cached.

    Returns:
        `step(model, opt, *args) -> (new_model, new_opt, aux)`.
    """
    body = _step_body(loss_fn)
    if dispatch == "filter_jit":
        return _filter_jit_step(body, donate)
    if dispatch == "partition":
        return _PartitionStep(body, donate)
    if dispatch == "cached":
        return _CachedStep(body, donate)
    raise ValueError(f"`dispatch` must be 'filter_jit', 'partition' or 'cached', got {dispatch!r}.")
