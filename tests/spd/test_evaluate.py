"""`evaluate_decomposition` on a hand-built, exact decomposition of a TMS target."""

from __future__ import annotations

import math

import torch

from trainfast.spd import ComponentModel, Flags, SPDConfig, evaluate_decomposition, tie_components
from trainfast.spd._targets import TMSModel


def _pentagon_target() -> TMSModel:
    model = TMSModel(5, 2)
    angles = torch.arange(5) * 2 * math.pi / 5
    with torch.no_grad():
        model.linear1.weight.copy_(torch.stack([angles.cos(), angles.sin()]))
        model.linear2.weight.copy_(model.linear1.weight.T)
    return model


def _exact_decomposition(C: int = 8) -> ComponentModel:
    """Components 0-4 are features 0-4 exactly; 5-7 are zero. Each CI fn is `gelu(10 a)`."""
    torch.manual_seed(0)
    cfg = SPDConfig(C=C, target_module_paths=("linear1", "linear2"))
    model = ComponentModel(_pentagon_target(), cfg, Flags())
    c1 = model.component("linear1")
    w1 = model.target_weight("linear1")
    with torch.no_grad():
        c1.V.zero_()
        c1.U.zero_()
        for f in range(5):
            c1.V[f, f] = 1.0
            c1.U[f] = w1[:, f]
        for fn in model.ci_fns.values():
            first, last = fn.layers
            first.W.fill_(10.0)
            first.b.zero_()
            last.W.fill_(1.0 / first.W.shape[-1])
            last.b.zero_()
    tie_components(model, (("linear1", "linear2"),))
    return model


def test_exact_components_are_found_with_cosine_one():
    result = evaluate_decomposition(_exact_decomposition(), 5)
    first = result["linear1"]
    assert first.live == [0, 1, 2, 3, 4]  # zero components have zero acts, hence zero CI
    assert first.one_feature_each()
    assert first.feature_map == {f: f for f in range(5)}
    assert first.covers_features_once(5)
    assert first.min_cosine() > 0.999999
    assert first.ci.shape == (5, 8)


def test_downstream_module_sees_neighbours_but_maps_each_component_to_its_feature():
    second = evaluate_decomposition(_exact_decomposition(), 5)["linear2"]
    # linear2 reads the hidden vector: feature i's input overlaps its two neighbours (cos 72°)
    # and their components fire too; the strongest response is still the own feature.
    assert second.live == [0, 1, 2, 3, 4]
    assert not second.one_feature_each()
    assert second.features[0] == (0, 1, 4)
    assert second.feature_map == {f: f for f in range(5)}
    assert second.min_cosine() > 0.999999  # component c is row c of W2 (the "out" slice)


def test_threshold_and_axes_are_honoured():
    model = _exact_decomposition()
    strict = evaluate_decomposition(model, 5, threshold=1.0)
    assert strict["linear1"].live == []
    assert strict["linear1"].min_cosine() is None
    no_axis = evaluate_decomposition(model, 5, feature_axes={"linear1": None})
    assert set(no_axis["linear1"].cosines.values()) == {None}
    assert "5 live" in no_axis["linear2"].summary()
