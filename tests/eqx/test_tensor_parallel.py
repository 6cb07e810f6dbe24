import equinox as eqx
import jax
import jax.random as jr
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from trainfast.eqx import (
    ParallelLinear,
    apply_transforms,
    bert_tp_plan,
    column_parallel,
    make_module_opt,
    row_parallel,
)
from trainfast.eqx.bert import BertConfig, BertMLM, mlm_batches


CONFIG = BertConfig.tiny(2, dropout=0.0)  # hidden 32, intermediate 64


@pytest.fixture(scope="module")
def mesh(eight_devices):
    return Mesh(np.array(eight_devices).reshape(2, 4), ("data", "tp"))


@pytest.fixture(scope="module")
def created(mesh):
    def build(key):
        return BertMLM(CONFIG, key=key)

    return make_module_opt(
        build, optax.adam(1e-3), plan=bert_tp_plan("tp"), mesh=mesh, key=jr.key(0)
    )


def test_column_and_row_specs():
    lin = eqx.nn.Linear(4, 8, key=jr.key(0))
    col, row = column_parallel(lin, "tp"), row_parallel(lin, "tp")
    assert col.weight_spec == P("tp", None)
    assert col.bias_spec == P("tp")
    assert row.weight_spec == P(None, "tp")
    assert row.bias_spec == P()
    x = jr.normal(jr.key(1), (3, 4))
    np.testing.assert_allclose(col(x), jax.vmap(lin)(x), rtol=1e-6)
    with pytest.raises(TypeError, match="already column-parallel"):
        row_parallel(col, "tp")
    with pytest.raises(TypeError, match="2-D `weight`"):
        column_parallel(eqx.nn.LayerNorm(4), "tp")


def test_shard_shapes_per_device(created, mesh):
    model, _ = created
    layer = model.layers[1]
    h, f = CONFIG.hidden, CONFIG.intermediate
    expected = [
        (layer.attention.query.weight, (h // 4, h), P("tp", None)),
        (layer.attention.query.bias, (h // 4,), P("tp")),
        (layer.attention.output.weight, (h, h // 4), P(None, "tp")),
        (layer.attention.output.bias, (h,), P()),
        (layer.intermediate.dense.weight, (f // 4, h), P("tp", None)),
        (layer.output.dense.weight, (h, f // 4), P(None, "tp")),
        (model.embeddings.word.weight, (CONFIG.vocab_size, h), P()),
    ]
    for arr, shard_shape, spec in expected:
        assert arr.sharding == NamedSharding(mesh, spec)
        assert len(arr.addressable_shards) == 8
        for shard in arr.addressable_shards:
            assert shard.data.shape == shard_shape


def test_sharded_forward_matches_unsharded(created):
    model, _ = created
    reference = apply_transforms(BertMLM(CONFIG, key=jr.key(0)), bert_tp_plan())
    assert isinstance(reference.layers[0].attention.query, ParallelLinear)
    batch = next(mlm_batches(CONFIG, 2, 8, key=jr.key(1)))
    forward = eqx.filter_jit(lambda m, b: m(b["input_ids"], b["attention_mask"]))
    # Same weights, created under `jit` on 8 devices vs. on one; row-parallel layers sum
    # partial products in another order, so equality is up to float32 rounding.
    np.testing.assert_allclose(forward(model, batch), forward(reference, batch), atol=1e-5)
    sharded_leaves = jax.tree_util.tree_leaves(model)
    for a, b in zip(sharded_leaves, jax.tree_util.tree_leaves(reference)):
        np.testing.assert_array_equal(a, b)


def test_optimizer_state_sharded_like_params(created, mesh):
    model, opt = created
    adam_state = opt.state[0]
    for moments in (adam_state.mu, adam_state.nu):
        params = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
        for p, m in zip(params, jax.tree_util.tree_leaves(moments), strict=True):
            assert m.sharding == p.sharding
            assert m.shape == p.shape
    assert adam_state.count.sharding == NamedSharding(mesh, P())


def test_indivisible_split_is_an_error(mesh):
    bad = BertConfig.tiny(1, hidden=30, heads=3, intermediate=60)  # 30 % 4 != 0
    with pytest.raises(ValueError, match="not divisible by mesh axis 'tp' of size 4"):
        make_module_opt(
            lambda k: BertMLM(bad, key=k),
            optax.sgd(1e-3),
            plan=bert_tp_plan("tp"),
            mesh=mesh,
            key=jr.key(0),
        )


def test_the_creation_program_already_leaves_each_stack_sharded(mesh, monkeypatch):
    # The shardings are constraints on the program's outputs (worked out in its one
    # trace), so the stacks it returns must carry them: were they ignored, the slices
    # after it would reshard replicated stacks, and each device would have held a full
    # copy of every layer's weights first.
    from trainfast.eqx import _tensor_parallel

    seen = []
    real = _tensor_parallel.unstack_groups

    def spy(outputs, groups, leaf_shardings):
        for out, g in zip(outputs, groups):
            want = leaf_shardings[g[0]].spec
            seen.append((out.sharding.spec, P(None, *want) if len(g) > 1 else want))
        return real(outputs, groups, leaf_shardings)

    monkeypatch.setattr(_tensor_parallel, "unstack_groups", spy)
    make_module_opt(
        lambda k: BertMLM(CONFIG, key=k),
        optax.adam(1e-3),
        plan=bert_tp_plan("tp"),
        mesh=mesh,
        key=jr.key(0),
    )
    assert any("tp" in tuple(want) for _, want in seen)  # the plan shards something
    for got, want in seen:
        assert tuple(got) + (None,) * (len(want) - len(got)) == tuple(want), (got, want)


def _fake_mesh(platform, n):
    from types import SimpleNamespace

    return SimpleNamespace(devices=np.array([SimpleNamespace(platform=platform)] * n))


@pytest.mark.parametrize(
    ("platform", "n", "setting", "want"),
    [
        ("gpu", 1, None, True),  # one GPU: the kernel by default
        ("gpu", 4, None, False),  # XLA does not partition the kernel's custom call
        ("gpu", 4, True, True),
        ("gpu", 1, False, False),
        ("cpu", 1, None, False),  # only a GPU lowering exists
        ("cpu", 1, True, False),
    ],
)
def test_random_kernel_is_on_only_where_chosen_and_only_inside_the_scope(
    platform, n, setting, want
):
    from jax._src import config as jax_config

    from trainfast.eqx._tensor_parallel import _random_kernel_scope

    flag = jax_config.threefry_gpu_kernel_lowering
    with _random_kernel_scope(_fake_mesh(platform, n), setting):
        assert flag.value is want
    assert flag.value is False  # later programs keep JAX's default


def test_random_kernel_rejects_what_is_not_a_bool(mesh):
    with pytest.raises(TypeError, match="`random_kernel` must be None, True or False, got 1"):
        make_module_opt(
            lambda k: BertMLM(CONFIG, key=k),
            optax.sgd(1e-3),
            plan=bert_tp_plan("tp"),
            mesh=mesh,
            key=jr.key(0),
            random_kernel=1,
        )


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="the threefry kernel is GPU-only")
def test_random_kernel_draws_the_same_bits_on_one_gpu():
    # The kernel is the same threefry2x32 hash as XLA's lowering: switching it on for the
    # creation's compile must not change one bit of the model or of its optimizer state.
    one = Mesh(np.array(jax.devices()[:1]), ("tp",))

    def create(random_kernel):
        return make_module_opt(
            lambda k: BertMLM(CONFIG, key=k),
            optax.adam(1e-3),
            plan=bert_tp_plan("tp"),
            mesh=one,
            key=jr.key(0),
            random_kernel=random_kernel,
        )

    with_kernel, without = create(True), create(False)
    for a, b in zip(jax.tree.leaves(with_kernel), jax.tree.leaves(without)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
