"""Workload builders for perf tests and asv: BERT transform plans and BERT train steps."""

import itertools as it
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.random as jr
import optax

from ._bert import BertConfig, BertMLM, mlm_batches, mlm_loss, num_leaves
from ._optimizer import Optimizer
from ._packed import Packed
from ._tensor_parallel import bert_tp_plan
from ._train_step import make_train_step


class TransformWorkload(NamedTuple):
    """A BERT model and the tensor-parallel plan to apply to it."""

    model: BertMLM
    plan: dict[str, Callable]
    num_leaves: int
    num_matches: int


def bert_tp_workload(
    num_layers: int, *, hidden: int = 32, config: BertConfig | None = None, seed: int = 0
) -> TransformWorkload:
    """BERT-`num_layers` (tiny widths unless `config` is given) with [`bert_tp_plan`][].

    Transform cost depends on the tree structure (layers), not on the widths.
    """
    if config is None:
        config = BertConfig.tiny(num_layers, hidden=hidden, heads=4, intermediate=2 * hidden)
    model = BertMLM(config, key=jr.key(seed))
    return TransformWorkload(model, bert_tp_plan("tp"), num_leaves(config), 6 * num_layers)


TrainDispatch = Literal["filter_jit", "partition", "cached", "jit"]


class TrainWorkload:
    """A BERT MLM training loop with one dispatcher, holding its current state.

    Attributes:
        step: `step(state, batch) -> state`, as `perf.steps` expects. `state` is
            `(model, opt)`, or `(params, opt_state)` for `dispatch="jit"`; `batch` is
            `(mlm_batch, dropout_key)`. Donates `state` (never the batch).
        state: the current state (updated by `__call__` and `run`).
        batches: pre-generated device batches, cycled.

    Calling the workload runs one step on the held state and returns the new state; `run(n)`
    runs `n` steps back to back without waiting and returns the last state. Both consume
    the held state, so donated inputs are never reused.
    """

    def __init__(self, dispatch: str, config: BertConfig, step: Callable, state: Any, batches):
        self.dispatch = dispatch
        self.config = config
        self.step = step
        self.state = state
        self.batches = batches
        self._next = it.cycle(batches)

    def __call__(self) -> Any:
        self.state = self.step(self.state, next(self._next))
        return self.state

    def run(self, n: int) -> Any:
        step, nxt, state = self.step, self._next, self.state
        for _ in range(n):
            state = step(state, next(nxt))
        self.state = state
        return state


def _jit_reference_step(model: BertMLM, tx: optax.GradientTransformation) -> tuple:
    """Hand-written partition + `jax.jit` with donation (the seeds' fast reference).

    Partitions once, here; the loop then passes only `(params, opt_state)`.
    """
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = tx.init(params)

    def train_step(params, opt_state, batch, key):
        def loss(p):
            return mlm_loss(eqx.combine(p, static), batch, key)

        (_, aux), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, aux

    jitted = jax.jit(train_step, donate_argnums=(0, 1))

    def step(state, batch):
        params, opt_state, _ = jitted(*state, *batch)
        return params, opt_state

    return step, (params, opt_state), static


def train_step_workload(
    dispatch: TrainDispatch,
    num_layers: int = 12,
    *,
    batch: int = 1,
    seq: int = 8,
    config: BertConfig | None = None,
    dropout: float = 0.0,
    num_batches: int = 4,
    learning_rate: float = 1e-3,
    seed: int = 0,
    donate: bool = True,
    flatten: bool = False,
    packed: bool = False,
) -> TrainWorkload:
    """BERT-`num_layers` MLM training (tiny widths unless `config` is given), AdamW.

    Args:
        dispatch: `"filter_jit"`, `"partition"`, `"cached"` ([`make_train_step`][]) or
            `"jit"` (hand-written partition + `jax.jit` with donation, the reference).
        num_layers: encoder layers (ignored when `config` is given).
        batch, seq: batch shape.
        config: e.g. `BertConfig()` for BERT-base on a GPU.
        dropout: dropout rate of the tiny default config (ignored with `config`). Default
            0: on a CPU, generating dropout masks (threefry) costs more than the tiny
            matmuls and would hide the dispatch cost this workload is about; the tree, and
            so dispatch cost, is the same either way. `BertConfig()` keeps BERT's 0.1.
        num_batches: distinct pre-generated batches (cycled).
        flatten: fuse the optimizer update into one vector (`optax.flatten`, see
            [`Optimizer.create`][]), for every dispatcher and the reference alike.
        packed: the model's parameters travel as one buffer ([`Packed`][]; `state` is
            `(Packed, opt)`, unpacked inside the step), so the optimizer's update is fused
            too (`flatten` is then not needed). Dispatchers of `make_train_step` only.
    """
    if packed and dispatch == "jit":
        raise ValueError("`packed=True` is for the `make_train_step` dispatchers, not `jit`.")
    if config is None:
        config = BertConfig.tiny(num_layers, dropout=dropout)
    key_model, key_data, key_drop = jr.split(jr.key(seed), 3)
    model = BertMLM(config, key=key_model)
    tx = optax.adamw(learning_rate)
    if flatten:
        tx = optax.flatten(tx)
    data = mlm_batches(config, batch, seq, key=key_data)
    batches = [(next(data), k) for k in jr.split(key_drop, num_batches)]
    if dispatch == "jit":
        step, state, _ = _jit_reference_step(model, tx)
    else:
        loss = _packed_mlm_loss if packed else mlm_loss
        train_step = make_train_step(loss, dispatch=dispatch, donate=donate)

        def step(state, b):
            model, opt, _ = train_step(*state, *b)
            return model, opt

        trained = Packed.of(model) if packed else model
        state = (trained, Optimizer.create(tx, trained))
    return TrainWorkload(dispatch, config, step, state, batches)


def _packed_mlm_loss(packed: Packed, batch, key):
    return mlm_loss(packed.unpack(), batch, key)
