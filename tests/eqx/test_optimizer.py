import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
import pytest

from trainfast.eqx import Optimizer


def test_matches_optax_and_keeps_tx_static():
    model = eqx.nn.MLP(3, 2, 4, 1, key=jr.key(0))
    tx = optax.adam(1e-2)
    opt = Optimizer.create(tx, model)
    params = eqx.filter(model, eqx.is_inexact_array)
    state = tx.init(params)
    assert jax.tree_util.tree_structure(opt.state) == jax.tree_util.tree_structure(state)
    # `tx` and `wrt` are static: the optimizer's leaves are exactly the optax state's.
    assert len(jax.tree_util.tree_leaves(opt)) == len(jax.tree_util.tree_leaves(state))
    for i in range(5):
        grads = jax.tree.map(lambda p, i=i: jnp.full_like(p, 0.1 * (i + 1)), params)
        model, opt = opt(grads, model)
        updates, state = tx.update(grads, state, params)
        params = eqx.apply_updates(params, updates)
        assert eqx.tree_equal(eqx.filter(model, eqx.is_inexact_array), params)
    assert opt.tx is tx
    assert opt.wrt is eqx.is_inexact_array


def test_wrt_filter_freezes_other_leaves():
    model = eqx.nn.Linear(3, 2, key=jr.key(0))
    filt = jax.tree.map(lambda _: False, model)
    filt = eqx.tree_at(lambda lin: lin.weight, filt, True)
    opt = Optimizer.create(optax.sgd(1.0), model, wrt=filt)
    grads = eqx.filter(jax.tree.map(jnp.ones_like, model), filt)
    new, _ = opt(grads, model)
    assert jnp.array_equal(new.weight, model.weight - 1.0)
    assert new.bias is model.bias


def _train(tx, flatten, steps):
    from trainfast.eqx import make_train_step
    from trainfast.eqx.bert import BertConfig, BertMLM, mlm_batches, mlm_loss

    config = BertConfig.tiny(1, dropout=0.0)
    data = mlm_batches(config, 2, 8, key=jr.key(1))
    model = BertMLM(config, key=jr.key(0))
    opt = Optimizer.create(tx, model, flatten=flatten)
    step = make_train_step(mlm_loss, dispatch="cached", donate=True)
    for _ in range(steps):
        model, opt, _ = step(model, opt, next(data), None)
    return BertMLM(config, key=jr.key(0)), model, opt


@pytest.mark.parametrize(
    ("tx", "steps"),
    [
        # Adam divides by sqrt(v): where a gradient is ~0, float rounding in one step
        # becomes an O(lr) difference in the next, so multi-step Adam is not compared.
        (optax.adamw(1e-2), 1),
        (optax.sgd(1e-2, momentum=0.9), 4),
    ],
    ids=["adamw-1-step", "sgd-momentum-4-steps"],
)
def test_flattened_update_matches_per_leaf_update_through_a_donating_step(tx, steps):
    # `flatten=True` fuses the update into one vector: same values, float rounding aside
    # (float32: atol 1e-6, i.e. 1e-4 of the learning rate), through the cached, donating
    # train step.
    fresh, per_leaf, per_leaf_opt = _train(tx, False, steps)
    _, flat, flat_opt = _train(tx, True, steps)
    assert len(jax.tree_util.tree_leaves(flat_opt.state)) < (
        len(jax.tree_util.tree_leaves(per_leaf_opt.state)) / 10
    )
    leaves = list(zip(jax.tree_util.tree_leaves(per_leaf), jax.tree_util.tree_leaves(flat)))
    worst = max(float(jnp.max(jnp.abs(a - b))) for a, b in leaves)
    assert worst <= 1e-6, worst
    # the weights moved: the comparison is not between two untouched models
    moved = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree_util.tree_leaves(fresh), jax.tree_util.tree_leaves(flat))
    )
    assert moved > 1e-3, moved
