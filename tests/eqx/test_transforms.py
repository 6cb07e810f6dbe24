import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

from trainfast.eqx import (
    ParallelLinear,
    apply_transforms,
    apply_transforms_sequential,
    apply_transforms_tree_at,
    bert_tp_plan,
    iter_module,
)
from trainfast.eqx.bert import BertConfig, BertMLM


IMPLS = [apply_transforms, apply_transforms_sequential, apply_transforms_tree_at]


@pytest.fixture(scope="module")
def model():
    return BertMLM(BertConfig.tiny(2), key=jr.key(0))


class Tag(eqx.Module):
    """Wraps a module and records a label: makes nesting order visible."""

    inner: eqx.Module
    label: str = eqx.field(static=True)


def tag(label):
    return lambda m: Tag(m, label)


def scale(k):
    return lambda m: jax.tree.map(lambda x: x * k if eqx.is_array(x) else x, m)


def all_equal(model, plan, **kwargs):
    outs = [f(model, plan, **kwargs) for f in IMPLS]
    assert bool(eqx.tree_equal(outs[0], outs[1]))
    assert bool(eqx.tree_equal(outs[0], outs[2]))
    return outs[0]


def test_iter_module_paths_and_getters(model):
    items = list(iter_module(model))
    assert items[0][0] == ""
    assert items[0][2] is model
    for _, getter, sub in items:
        assert getter(model) is sub
    paths = [p for p, _, _ in items]
    assert (
        paths.index("layers.0") < paths.index("layers.0.attention.query") < paths.index("layers.1")
    )
    assert "config" not in " ".join(paths)  # static fields are not traversed


def test_bert_tp_plan_all_equal(model):
    out = all_equal(model, bert_tp_plan())
    kinds = [(p, s.style) for p, _, s in iter_module(out) if isinstance(s, ParallelLinear)]
    assert len(kinds) == 12
    assert ("layers.1.attention.output", "row") in kinds
    assert ("layers.1.intermediate.dense", "column") in kinds
    # Paths are unchanged and untouched subtrees are shared, not copied.
    assert out.embeddings is model.embeddings
    assert out.layers[0].attention.layer_norm is model.layers[0].attention.layer_norm


def test_nested_matches_apply_innermost_first(model):
    plan = {"layers.*.attention": tag("outer"), "layers.*.attention.query": tag("inner")}
    out = all_equal(model, plan)
    att = out.layers[1].attention
    assert isinstance(att, Tag)
    assert att.label == "outer"
    assert isinstance(att.inner.query, Tag)
    assert att.inner.query.label == "inner"


def test_root_and_wildcard_everything(model):
    out = all_equal(model, {"head.*": scale(2.0), "": tag("root")})
    assert isinstance(out, Tag)
    assert jnp.array_equal(out.inner.head.decoder.weight, 2 * model.head.decoder.weight)


def test_two_patterns_one_path_error_names_both(model):
    plan = {"layers.*.query": tag("a"), "*.attention.query": tag("b")}
    for f in IMPLS:
        with pytest.raises(ValueError, match=r"'layers\.\*\.query' and '\*\.attention\.query'"):
            f(model, plan)


def test_two_patterns_compose_in_plan_order(model):
    plan = {"layers.*.query": tag("a"), "*.attention.query": tag("b")}
    out = all_equal(model, plan, on_conflict="compose")
    q = out.layers[0].attention.query
    assert q.label == "b"
    assert q.inner.label == "a"


def test_transform_must_return_module(model):
    for f in IMPLS:
        with pytest.raises(
            TypeError, match=r"'head\.decoder'.*returned ndarray|returned ArrayImpl"
        ):
            f(model, {"head.decoder": lambda m: m.weight})


def test_unmatched_pattern_names_closest_paths(model):
    plan = {"layers.*.attention.qeury": tag("x")}
    for f in IMPLS:
        with pytest.raises(
            ValueError, match=r"qeury.*closest paths: 'layers\.\d\.attention\.query'"
        ):
            f(model, plan)


def test_unmatched_pattern_warns_when_not_strict(model):
    plan = {"layers.*.attention.query": tag("q"), "nope": tag("x")}
    for f in IMPLS:
        with pytest.warns(UserWarning, match="'nope'"):
            out = f(model, plan, strict=False)
        assert out.layers[0].attention.query.label == "q"


def test_lists_dicts_and_empty_plan():
    class Holder(eqx.Module):
        items: list
        named: dict

    lin = lambda k: eqx.nn.Linear(2, 2, key=jr.key(k))  # noqa: E731
    holder = Holder([lin(0), lin(1)], {"a": lin(2)})
    assert [p for p, _, _ in iter_module(holder)] == ["", "items.0", "items.1", "named.a"]
    out = all_equal(holder, {"items.1": tag("x"), "named.a": tag("y")})
    assert out.items[0] is holder.items[0]
    assert out.items[1].label == "x"
    assert out.named["a"].label == "y"
    assert apply_transforms(holder, {}) is holder
