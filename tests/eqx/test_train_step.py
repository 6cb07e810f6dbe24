import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from trainfast.eqx import Optimizer, make_train_step
from trainfast.eqx.bert import BertConfig, BertMLM, mlm_batches, mlm_loss
from trainfast.eqx.workloads import train_step_workload


DISPATCHES = ["filter_jit", "partition", "cached"]


def counting(loss_fn):
    """`loss_fn` plus a counter of how often it is traced (Python runs only when tracing)."""

    def wrapped(*args):
        wrapped.traces += 1
        return loss_fn(*args)

    wrapped.traces = 0
    return wrapped


@pytest.fixture(scope="module")
def ten_steps():
    config = BertConfig.tiny(2)
    data = mlm_batches(config, 2, 8, key=jr.key(1))
    batches = [(next(data), k) for k in jr.split(jr.key(2), 10)]
    tx = optax.adamw(1e-2)  # one object: `tx` is static, so it is part of the treedef
    results = {}
    for dispatch in DISPATCHES:
        model = BertMLM(config, key=jr.key(0))
        opt = Optimizer.create(tx, model)
        loss_fn = counting(mlm_loss)
        step = make_train_step(loss_fn, dispatch=dispatch)
        losses = []
        for batch, key in batches:
            model, opt, aux = step(model, opt, batch, key)
            losses.append(aux["loss"])
        results[dispatch] = (model, opt, np.asarray(losses), loss_fn.traces)
    return results


def test_dispatchers_identical_over_ten_steps(ten_steps):
    ref_model, ref_opt, ref_losses, _ = ten_steps["filter_jit"]
    assert ref_losses[-1] < ref_losses[0]  # it trains
    for dispatch in DISPATCHES[1:]:
        model, opt, losses, _ = ten_steps[dispatch]
        # The three dispatchers trace the same function, so XLA gets the same program:
        # results are bitwise equal, no tolerance.
        np.testing.assert_array_equal(losses, ref_losses)
        assert bool(eqx.tree_equal(model, ref_model))
        assert bool(eqx.tree_equal(opt, ref_opt))


@pytest.mark.parametrize("dispatch", DISPATCHES)
def test_each_dispatcher_traces_once_over_ten_steps(ten_steps, dispatch):
    assert ten_steps[dispatch][3] == 1


def test_hand_written_jit_reference_matches():
    a = train_step_workload("cached", 1, batch=2, seq=8)
    b = train_step_workload("jit", 1, batch=2, seq=8)
    for _ in range(3):
        (model, _), (params, _) = a(), b()
    np.testing.assert_allclose(
        model.head.decoder.weight, params.head.decoder.weight, rtol=1e-5, atol=1e-6
    )


def mlp_loss(model, x):
    y = jax.vmap(model)(x)
    return jnp.mean(y**2), {"loss": jnp.mean(y**2)}


@pytest.mark.parametrize("dispatch", DISPATCHES)
def test_changed_structure_recompiles_once(dispatch):
    loss_fn = counting(mlp_loss)
    step = make_train_step(loss_fn, dispatch=dispatch)
    x = jnp.ones((4, 3))

    def fresh(depth):
        model = eqx.nn.MLP(3, 1, 8, depth, key=jr.key(depth))
        return model, Optimizer.create(optax.sgd(1e-2), model)

    model, opt = fresh(1)
    for _ in range(3):
        model, opt, _ = step(model, opt, x)
    assert loss_fn.traces == 1
    model2, opt2 = fresh(2)  # a different treedef
    for _ in range(3):
        model2, opt2, _ = step(model2, opt2, x)
    assert loss_fn.traces == 2
    for _ in range(2):  # back to the first structure: cached, no new trace
        model, opt, _ = step(model, opt, x)
    assert loss_fn.traces == 2


@pytest.mark.parametrize("dispatch", DISPATCHES)
@pytest.mark.parametrize("donate", [True, False])
def test_donation_consumes_model_and_opt_not_batch(dispatch, donate):
    step = make_train_step(mlp_loss, dispatch=dispatch, donate=donate)
    model = eqx.nn.MLP(3, 1, 8, 1, key=jr.key(0))
    opt = Optimizer.create(optax.adam(1e-2), model)
    x = jnp.ones((4, 3))
    new_model, new_opt, _ = step(model, opt, x)
    jax.block_until_ready((new_model, new_opt))
    assert model.layers[0].weight.is_deleted() is donate
    assert opt.state[0].mu.layers[0].weight.is_deleted() is donate
    assert not x.is_deleted()
    assert not new_model.layers[0].weight.is_deleted()


def test_cached_fast_path_only_for_returned_objects():
    step = make_train_step(mlp_loss, dispatch="cached", donate=False)
    model = eqx.nn.MLP(3, 1, 8, 1, key=jr.key(0))
    opt = Optimizer.create(optax.sgd(0.1), model)
    x = jnp.ones((4, 3))
    m1, o1, _ = step(model, opt, x)
    # Equal-looking but different objects take the slow path and still give the right answer.
    m1_copy = jax.tree.map(lambda a: a + 0 if eqx.is_array(a) else a, m1)
    m2, _, _ = step(m1_copy, o1, x)
    m2_fast, _, _ = step(*step(model, opt, x)[:2], x)
    assert bool(eqx.tree_equal(m2, m2_fast))


def test_unknown_dispatch():
    with pytest.raises(ValueError, match="`dispatch` must be"):
        make_train_step(mlp_loss, dispatch="pmap")
