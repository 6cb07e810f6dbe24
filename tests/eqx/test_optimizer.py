import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax

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
