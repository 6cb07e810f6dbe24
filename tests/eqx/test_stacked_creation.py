"""`make_module_opt`'s creation leaves as one stacked output per kind of leaf (issue 17)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from trainfast.eqx import apply_transforms, bert_tp_plan, module_shardings
from trainfast.eqx._stacked import group_leaves, stack_groups, unstack_groups
from trainfast.eqx.bert import BertConfig, BertMLM


@pytest.fixture(scope="module")
def mesh(eight_devices):
    return Mesh(np.array(eight_devices).reshape(2, 4), ("data", "tp"))


def _abstract(layers, mesh):
    config = BertConfig.tiny(layers)
    model = eqx.filter_eval_shape(
        lambda k: apply_transforms(BertMLM(config, key=k), bert_tp_plan("tp")), jr.key(0)
    )
    dyn = eqx.filter(model, lambda x: isinstance(x, jax.ShapeDtypeStruct))
    return dyn, module_shardings(dyn, mesh)


def test_outputs_do_not_grow_with_depth(mesh):
    # 16 kinds of leaf per layer plus the 10 leaves of embeddings and head: 26 outputs at
    # any depth (one per leaf would be 16 L + 10).
    counts = {}
    for layers in (2, 5):
        groups, out_sh, leaf_sh, _ = group_leaves(*_abstract(layers, mesh))
        counts[layers] = len(groups)
        assert len(leaf_sh) == 16 * layers + 10
        assert sorted(i for g in groups for i in g) == list(range(16 * layers + 10))
        stacked = [(g, s) for g, s in zip(groups, out_sh) if len(g) > 1]
        assert len(stacked) == 16
        assert all(len(g) == layers for g, _ in stacked)
        # The layer axis is unsharded; the rest is sharded as each leaf is.
        for g, s in stacked:
            assert s.spec == P(None, *leaf_sh[g[0]].spec)
    assert counts == {2: 26, 5: 26}


def test_query_and_key_weights_are_not_mixed(mesh):
    # Same shape and sharding, different names: different groups.
    groups, _, _, treedef = group_leaves(*_abstract(2, mesh))
    paths = [
        jax.tree_util.keystr(p)
        for p, _ in jax.tree_util.tree_flatten_with_path(_abstract(2, mesh)[0])[0]
    ]
    for g in groups:
        names = {p.replace("[0]", "[*]").replace("[1]", "[*]") for p in (paths[i] for i in g)}
        assert len(names) == 1, names


def test_unstack_gives_each_leaf_sharded_and_frees_the_stack(mesh):
    spec = NamedSharding(mesh, P("tp", None))
    leaves = [jr.normal(jr.key(i), (8, 4)) for i in range(3)]
    abstract = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves]
    groups, out_sh, leaf_sh, _ = group_leaves(abstract, [spec] * 3)
    assert groups == [[0, 1, 2]]
    assert out_sh[0].spec == P(None, "tp", None)
    stacked = jax.jit(lambda *xs: stack_groups(xs, groups), out_shardings=out_sh)(*leaves)
    (stack,) = stacked
    assert stack.sharding.spec == P(None, "tp", None)
    out = unstack_groups(stacked, groups, leaf_sh)
    assert stack.is_deleted()
    for a, b in zip(out, leaves):
        np.testing.assert_array_equal(a, b)
        assert a.sharding == spec
        assert {s.data.shape for s in a.addressable_shards} == {(2, 4)}


def test_mismatched_shardings_are_an_error(mesh):
    abstract = [jax.ShapeDtypeStruct((4,), jnp.float32)] * 2
    with pytest.raises(ValueError, match="one sharding per array leaf.*got 1 shardings for 2"):
        group_leaves(abstract, [NamedSharding(mesh, P())])


# Values (the same bits as the eager unsharded init), shardings and the optimizer state of
# the stacked-then-split creation: tests/eqx/test_tensor_parallel.py (its `created` model).
