"""Tensor-parallel Linear layers, the BERT plan, and sharded model/optimizer creation."""

import contextlib
import functools as ft
from collections.abc import Callable, Mapping
from typing import Any, Literal

import equinox as eqx
import jax
import jax.tree_util as jtu
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, Float, PRNGKeyArray

from ._optimizer import Optimizer
from ._stacked import group_leaves, stack_groups, unstack_groups
from ._transforms import Plan, apply_transforms


class ParallelLinear(eqx.Module):
    """A Linear layer annotated with how its weight is split over a mesh axis.

    `weight` is `(out_features, in_features)` like `eqx.nn.Linear`. `"column"` splits the
    output features (weight `P(axis, None)`, bias `P(axis)`); `"row"` splits the input
    features (weight `P(None, axis)`, bias replicated), so a column layer followed by a row
    layer needs one reduction. The annotation is static; the arrays are placed by
    [`make_module_opt`][] (or `jax.device_put` with [`module_shardings`][]), and under `jit`
    XLA's partitioner inserts the collectives. Calling works on any leading shape.
    """

    weight: Float[Array, "out in"]
    bias: Float[Array, " out"] | None
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    style: Literal["column", "row"] = eqx.field(static=True)
    axis: Any = eqx.field(static=True)

    def __call__(self, x: Float[Array, "... in"], *, key=None) -> Float[Array, "... out"]:
        del key
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias

    @property
    def weight_spec(self) -> PartitionSpec:
        if self.style == "column":
            return PartitionSpec(self.axis, None)
        return PartitionSpec(None, self.axis)

    @property
    def bias_spec(self) -> PartitionSpec:
        return PartitionSpec(self.axis) if self.style == "column" else PartitionSpec()


def _parallel(linear: eqx.Module, axis: Any, style: str) -> ParallelLinear:
    if isinstance(linear, ParallelLinear):
        raise TypeError(f"{style}_parallel: the layer is already {linear.style}-parallel.")
    weight = getattr(linear, "weight", None)
    if weight is None or getattr(weight, "ndim", None) != 2:
        raise TypeError(
            f"`{style}_parallel` expects a Linear-like module with a 2-D `weight`, got "
            f"{type(linear).__name__}."
        )
    # Built without `__init__` (as a pytree unflatten does): a transform runs once per
    # match, and the module metaclass's checks would dominate the one-pass rebuild.
    new = object.__new__(ParallelLinear)
    new.__dict__.update(
        weight=weight,
        bias=getattr(linear, "bias", None),
        in_features=weight.shape[1],
        out_features=weight.shape[0],
        style=style,
        axis=axis,
    )
    return new


def column_parallel(linear: eqx.Module, axis: Any = "tp") -> ParallelLinear:
    """Split a Linear's output features over mesh axis `axis` (weight `P(axis, None)`)."""
    return _parallel(linear, axis, "column")


def row_parallel(linear: eqx.Module, axis: Any = "tp") -> ParallelLinear:
    """Split a Linear's input features over mesh axis `axis` (weight `P(None, axis)`)."""
    return _parallel(linear, axis, "row")


def bert_tp_plan(axis: str = "tp") -> dict[str, Callable]:
    """Megatron-style plan for [`BertMLM`][]: 6 matches per layer.

    `query`, `key`, `value` and `intermediate.dense` are column-parallel; the attention
    `output` and the feed-forward `output.dense` are row-parallel. Embeddings, LayerNorms
    and the MLM head stay replicated.
    """
    col = ft.partial(column_parallel, axis=axis)
    row = ft.partial(row_parallel, axis=axis)
    return {
        "layers.*.attention.query": col,
        "layers.*.attention.key": col,
        "layers.*.attention.value": col,
        "layers.*.attention.output": row,
        "layers.*.intermediate.dense": col,
        "layers.*.output.dense": row,
    }


def _is_abstract_array(x: Any) -> bool:
    return isinstance(x, (jax.ShapeDtypeStruct, jax.Array, np.ndarray))


def module_shardings(tree: Any, mesh: Mesh) -> Any:
    """A pytree like `tree` with a `NamedSharding` at every (abstract) array leaf.

    `ParallelLinear` weights/biases get their annotated specs; every other array is
    replicated. Non-array leaves become `None`. Raises `ValueError` if a split dimension is
    not divisible by the mesh axis size.
    """
    replicated = NamedSharding(mesh, PartitionSpec())

    def one(node: Any) -> Any:
        if isinstance(node, ParallelLinear):
            size = _axis_size(mesh, node.axis)
            dim = node.out_features if node.style == "column" else node.in_features
            if dim % size:
                raise ValueError(
                    f"{node.style}-parallel layer with {dim} split features is not "
                    f"divisible by mesh axis {node.axis!r} of size {size}."
                )
            new = object.__new__(ParallelLinear)
            new.__dict__.update(node.__dict__)
            new.__dict__["weight"] = NamedSharding(mesh, node.weight_spec)
            if node.bias is not None:
                new.__dict__["bias"] = NamedSharding(mesh, node.bias_spec)
            return new
        return replicated if _is_abstract_array(node) else None

    return jtu.tree_map(one, tree, is_leaf=lambda x: isinstance(x, ParallelLinear))


def _axis_size(mesh: Mesh, axis: Any) -> int:
    names = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([mesh.shape[n] for n in names if n is not None]))


def make_module_opt(
    build_model: Callable[[PRNGKeyArray], eqx.Module],
    tx: optax.GradientTransformation,
    *,
    plan: Plan,
    mesh: Mesh,
    key: PRNGKeyArray,
    wrt: Callable[[Any], bool] = eqx.is_inexact_array,
    compiler_options: Mapping[str, Any] | None = None,
    random_kernel: bool | None = None,
) -> tuple[eqx.Module, Optimizer]:
    """Create a model and its [`Optimizer`][] already sharded over `mesh`.

    Model and optimizer are created by one `jax.jit` whose outputs are constrained to their
    planned shardings, so every device materialises only its shards: there is never a full
    copy on one device. `build_model(key)`, `apply_transforms(model, plan)` and the
    optimizer's init are traced once: each array's sharding is worked out inside that
    trace from the traced shapes (a constraint on an output is the sharding it leaves the
    program with), not by an abstract trace first, since tracing the per-layer pytree is
    the part of the first run that grows with depth. Optimizer-state leaves that mirror a
    parameter (e.g. Adam's `mu`, `nu`) are sharded like it (`optax.tree_map_params`); the
    rest (step counts) is replicated. `wrt` is evaluated on the traced model.

    The compiled creation does not grow with depth: the like leaves of all layers (say every
    `layers.*.attention.query.weight`, and its `mu` and `nu`) leave the program as one
    stacked array each (the layer axis unsharded, the rest as planned), so it has one output
    per kind of leaf instead of one per leaf, and is cut into the per-layer leaves right
    after by one small jitted slice per kind of leaf (`trainfast.eqx._stacked`). Each slice
    of a sharded stack is sharded as planned, so there is still no full copy on one device;
    transiently, while one kind is cut, its bytes exist twice (the peak is the model and
    state plus the largest kind of leaf over all layers). What still grows with depth is the
    Python work on the per-layer pytree (tracing, transforms, the optimizer's per-leaf init),
    once (docs/tp-scaling.md).

    On a GPU most of the first run was compiling the random draws (one H200, XLA's own
    lowering of threefry: 4.8-5.9 s of a 5.7-7.9 s first run at 4-60 layers). So on a mesh of
    one GPU the creation's random bits are lowered to JAX's threefry CUDA kernel
    (`random_kernel`; 1.66 s at 4L-768H, 3.89 s at 48L-2048H). The same bits either way; it
    is scoped to the creation's lowering only (the flag is part of JAX's jit key, so no later
    program changes). Its cost is memory: the kernel's operands are materialised, so while
    one kind of leaf is drawn (all layers at once) its counters and keys take about 6 x 4
    bytes per element more. It is not used on several devices, since XLA does not partition
    the custom call (every device would draw the whole array). A persistent compilation
    cache, `jax.config.update("jax_compilation_cache_dir", DIR)`, takes a second process to
    1.4-2.1 s; it is global, so left to the caller.

    Args:
        build_model: `key -> Module`, traced (must be jittable).
        tx: optax transformation (static).
        plan: `{pattern: transform}`, e.g. [`bert_tp_plan`][]; applied in one pass.
        mesh: the device mesh; axis names must match the plan's.
        key: PRNG key (traced).
        wrt: leaves to optimise, as for [`Optimizer.create`][].
        compiler_options: XLA options for the creation's compile only (it runs once, so
            its compile is all it costs), e.g. `{"xla_backend_optimization_level": 0}`;
            `None`: XLA's defaults. Other options may round floats differently: at level
            0 on XLA:CPU, normal draws (the embeddings) differ from the default's in the
            last bit (2.4e-7 relative), uniform ones not at all.
        random_kernel: lower the creation's random bits to JAX's threefry GPU kernel
            (`jax_threefry_gpu_kernel_lowering`, for this compile only). `None`: when the
            mesh is one GPU; `False`: never; `True`: on GPUs always, several devices
            included (each then draws whole arrays). Ignored off GPUs.

    Returns:
        `(model, optimizer)`.
    """

    def create(k):
        model = apply_transforms(build_model(k), plan)
        return model, Optimizer.create(tx, model, wrt=wrt)

    # What the trace learns besides the program: the static parts, how the leaves were
    # grouped, and each leaf's planned sharding (all Python objects, no tracers).
    found: dict[str, Any] = {}

    @jax.jit
    def create_sharded(k):
        model, opt = create(k)
        model_dyn, model_static = eqx.partition(model, eqx.is_array)
        state_dyn, state_static = eqx.partition(opt.state, eqx.is_array)
        # The shardings come from the traced shapes, in the one trace the program needs:
        # tracing the user's constructor (per layer: its initialisers, the transforms,
        # the optimizer's per-leaf init) is the part of the first run that grows with
        # depth, and a separate `eval_shape` to learn the shapes first would do it twice.
        params_sh = module_shardings(eqx.filter(model, opt.wrt), mesh)
        state_sh = optax.tree_map_params(
            tx,
            lambda _, sharding: sharding,
            state_dyn,
            params_sh,
            transform_non_params=lambda x: None if x is None else replicated,
            is_leaf=lambda x: x is None,
        )
        # Like leaves of all layers leave the program as one stacked array each, so its
        # outputs (and XLA's compile) do not grow with depth; they are cut into the
        # per-layer leaves right after, each slice sharded as planned (`_stacked`).
        groups, out_sh, leaf_sh, treedef = group_leaves(
            (model_dyn, state_dyn), (module_shardings(model_dyn, mesh), state_sh)
        )
        found.update(
            model_static=model_static,
            state_static=state_static,
            wrt=opt.wrt,
            groups=groups,
            leaf_sh=leaf_sh,
            treedef=treedef,
        )
        stacks = stack_groups(jtu.tree_leaves((model_dyn, state_dyn)), groups)
        # Constrained, not `out_shardings=`: those would have to be known before the trace.
        # The constraint on an output is the sharding it leaves the program with.
        return [jax.lax.with_sharding_constraint(x, sh) for x, sh in zip(stacks, out_sh)]

    replicated = NamedSharding(mesh, PartitionSpec())
    with _random_kernel_scope(mesh, random_kernel):
        lowered = create_sharded.lower(key)
    compiled = lowered.compile(
        compiler_options=None if compiler_options is None else dict(compiler_options)
    )
    leaves = unstack_groups(compiled(key), found["groups"], found["leaf_sh"])
    model_dyn, state_dyn = jtu.tree_unflatten(found["treedef"], leaves)
    model = eqx.combine(model_dyn, found["model_static"])
    opt = Optimizer(eqx.combine(state_dyn, found["state_static"]), tx, found["wrt"])
    return model, opt


def _random_kernel_scope(mesh: Mesh, random_kernel: bool | None):
    """The scope in which the creation is lowered: JAX's threefry GPU kernel on or not."""
    if random_kernel is not None and not isinstance(random_kernel, bool):
        raise TypeError(f"`random_kernel` must be None, True or False, got {random_kernel!r}.")
    on_gpu = all(d.platform in ("gpu", "cuda", "rocm") for d in mesh.devices.flat)
    use = on_gpu and (random_kernel or (random_kernel is None and mesh.devices.size == 1))
    # The flag's thread-local context manager lives in `jax._src.config` (the public
    # `jax.config.update` is process-wide). Where a JAX release moves it, the creation
    # keeps XLA's own lowering: slower to compile, the same bits.
    try:
        from jax._src import config as jax_config

        state = jax_config.threefry_gpu_kernel_lowering
    except (ImportError, AttributeError):
        state = None
    if not use or state is None:
        return contextlib.nullcontext()
    return state(True)
