"""`Packed`: a model whose trainable arrays are one buffer per dtype (issue 17, section 3)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from trainfast.eqx import Optimizer, Packed, make_train_step
from trainfast.eqx.bert import BertConfig, BertMLM, mlm_batches, mlm_loss


class Mixed(eqx.Module):
    w: jax.Array
    h: jax.Array
    ids: jax.Array
    empty: jax.Array
    name: str = eqx.field(static=True)
    scale: float = 2.0


def _mixed() -> Mixed:
    k1, k2 = jr.split(jr.key(0))
    return Mixed(
        jr.normal(k1, (3, 4)),
        jr.normal(k2, (5,)).astype(jnp.bfloat16),
        jnp.arange(6, dtype=jnp.int32),
        jnp.zeros((0, 2)),
        "m",
    )


def test_unpack_is_the_model_bit_for_bit_inside_and_outside_jit():
    model = _mixed()
    packed = Packed.of(model)
    # float32 and bfloat16 leaves: one buffer each; the int array stays a leaf of its own.
    assert packed.dtypes == ("float32", "bfloat16")
    assert [b.shape for b in packed.buffers] == [(12,), (5,)]
    assert packed.num_buffers == 3
    for got in (packed.unpack(), eqx.filter_jit(lambda p: p.unpack())(packed)):
        assert jax.tree.structure(got) == jax.tree.structure(model)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(model)):
            assert np.asarray(a).dtype == np.asarray(b).dtype
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert got.name == "m"
        assert got.scale == 2.0


def test_a_filter_chooses_what_is_packed():
    model = _mixed()
    packed = Packed.of(model, wrt=lambda x: eqx.is_inexact_array(x) and x.ndim == 2)
    assert packed.dtypes == ("float32",)
    assert packed.buffers[0].shape == (12,)  # w and the empty array
    assert packed.rest[1] is model.h


def _bert_steps(packed: bool, steps: int):
    config = BertConfig.tiny(2, dropout=0.0)
    data = mlm_batches(config, 2, 8, key=jr.key(1))
    batches = [next(data) for _ in range(steps)]
    model = BertMLM(config, key=jr.key(0))
    if packed:
        state = Packed.of(model)
        loss = lambda p, b, k: mlm_loss(p.unpack(), b, k)  # noqa: E731
        tx = optax.adamw(1e-2)
    else:
        state, loss, tx = model, mlm_loss, optax.flatten(optax.adamw(1e-2))
    opt = Optimizer.create(tx, state)
    step = make_train_step(loss, dispatch="cached", donate=True)
    for b in batches:
        state, opt, aux = step(state, opt, b, None)
    return (state.unpack() if packed else state), opt, aux


def test_a_packed_train_step_matches_the_fused_update_through_donation():
    # Packed parameters give the optimizer one vector per dtype, as `optax.flatten` does:
    # the same AdamW step, float rounding aside (float32; one step, since Adam's division
    # by sqrt(v) turns rounding where a gradient is ~0 into O(lr) differences later).
    fresh = BertMLM(BertConfig.tiny(2, dropout=0.0), key=jr.key(0))
    flat, flat_opt, _ = _bert_steps(False, 1)
    packed, packed_opt, aux = _bert_steps(True, 1)
    assert len(jax.tree.leaves(packed_opt.state)) == len(jax.tree.leaves(flat_opt.state))
    worst = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(flat), jax.tree.leaves(packed))
    )
    assert worst <= 1e-6, worst
    moved = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(packed))
    )
    assert moved > 1e-3, moved
    assert np.isfinite(float(aux["loss"]))


def test_a_packed_model_is_few_buffers_and_donated():
    config = BertConfig.tiny(2, dropout=0.0)
    model = BertMLM(config, key=jr.key(0))
    packed = Packed.of(model)
    assert len(jax.tree.leaves(model)) > 40
    assert packed.num_buffers == 1  # BERT's arrays are all float32 parameters
    opt = Optimizer.create(optax.adamw(1e-3), packed)
    step = make_train_step(lambda p, b, k: mlm_loss(p.unpack(), b, k), dispatch="cached")
    batch = next(mlm_batches(config, 2, 8, key=jr.key(1)))
    new, _, _ = step(packed, opt, batch, None)
    assert new.buffers[0].shape == packed.buffers[0].shape
    with pytest.raises(RuntimeError, match="deleted|donated"):
        np.asarray(packed.buffers[0])
