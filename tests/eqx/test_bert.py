import itertools as it

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest

from trainfast.eqx import iter_module
from trainfast.eqx._bert import Layer
from trainfast.eqx.bert import BertConfig, BertMLM, mlm_batches, mlm_loss, num_leaves


def test_structure_and_paths():
    config = BertConfig.tiny(3)
    model = BertMLM(config, key=jr.key(0))
    assert len(jax.tree_util.tree_leaves(model)) == num_leaves(config) == 58
    paths = {p for p, _, _ in iter_module(model)}
    for p in (
        "layers.2.attention.query",
        "layers.2.attention.output",
        "layers.2.intermediate.dense",
        "layers.2.output.dense",
        "embeddings.word",
        "head.decoder",
    ):
        assert p in paths


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        BertConfig(hidden=30, heads=4)
    with pytest.raises(ValueError, match="attention"):
        BertConfig(attention="flash")


def test_batches_are_seeded_and_masked_80_10_10():
    config = BertConfig.tiny(1, max_position=512)
    a = next(mlm_batches(config, 64, 512, key=jr.key(0)))
    b = next(mlm_batches(config, 64, 512, key=jr.key(0)))
    assert eqx.tree_equal(a, b)
    assert a["input_ids"].dtype == jnp.int32
    assert a["input_ids"].shape == (64, 512)
    sel = np.asarray(a["label_mask"])
    inp, lab = np.asarray(a["input_ids"]), np.asarray(a["labels"])
    assert abs(sel.mean() - 0.15) < 0.01
    assert not np.any((inp != lab) & ~sel)  # only selected positions change
    masked = (inp == config.mask_token_id)[sel].mean()
    kept = (inp == lab)[sel].mean()  # 10% kept, plus random draws that hit the same token
    assert abs(masked - 0.8) < 0.02
    assert abs(kept - 0.1) < 0.02
    assert lab.min() >= config.num_special_tokens


def test_batches_differ_between_steps():
    config = BertConfig.tiny(1)
    a, b = it.islice(mlm_batches(config, 2, 8, key=jr.key(0)), 2)
    assert not np.array_equal(a["input_ids"], b["input_ids"])


@pytest.mark.parametrize("attention", ["eager", "fused"])
def test_loss_and_scan_matches_unrolled(attention):
    config = BertConfig.tiny(2, attention=attention, scan_layers=False)
    model = BertMLM(config, key=jr.key(0))
    batch = next(mlm_batches(config, 2, 8, key=jr.key(1)))
    loss, aux = jax.jit(mlm_loss)(model, batch, None)
    assert np.isfinite(loss)
    assert loss > 0
    assert set(aux) == {"loss", "accuracy"}
    # Same key and shapes give the same weights; only the static config differs.
    scanned = BertMLM(BertConfig.tiny(2, attention=attention), key=jr.key(0))
    loss_scan, _ = jax.jit(mlm_loss)(scanned, batch, None)
    np.testing.assert_allclose(loss, loss_scan, rtol=1e-5)
    # Dropout changes the loss; the same key reproduces it.
    key = jr.key(3)
    l1, _ = jax.jit(mlm_loss)(model, batch, key)
    l2, _ = jax.jit(mlm_loss)(model, batch, key)
    assert l1 == l2
    assert l1 != loss


def test_eager_equals_fused_without_dropout():
    eager = BertConfig.tiny(1, dropout=0.0)
    model = BertMLM(eager, key=jr.key(0))
    fused = BertMLM(BertConfig.tiny(1, dropout=0.0, attention="fused"), key=jr.key(0))
    batch = next(mlm_batches(eager, 2, 8, key=jr.key(1)))
    a = model(batch["input_ids"], batch["attention_mask"])
    b = fused(batch["input_ids"], batch["attention_mask"])
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_vmapped_layer_init_draws_what_each_layer_would_alone():
    # `BertMLM` initialises its layers with one vmapped `Layer` (one PRNG program per kind
    # of weight in a jitted initialiser): every value must be what `Layer(config, key=k)`
    # draws from that layer's key, eager and jitted alike.
    config = BertConfig.tiny(3)
    key = jr.key(7)
    keys = jr.split(key, config.num_layers + 2)
    expected = [Layer(config, key=k) for k in keys[2:]]
    for model in (BertMLM(config, key=key), eqx.filter_jit(lambda k: BertMLM(config, key=k))(key)):
        assert len(model.layers) == 3
        for got, want in zip(model.layers, expected):
            assert jtu.tree_structure(got) == jtu.tree_structure(want)
            for a, b in zip(jtu.tree_leaves(got), jtu.tree_leaves(want)):
                assert a.shape == b.shape
                assert bool(jnp.array_equal(a, b))
    # Layers differ from each other (each has its own key).
    assert not bool(
        jnp.array_equal(
            expected[0].intermediate.dense.weight, expected[1].intermediate.dense.weight
        )
    )
