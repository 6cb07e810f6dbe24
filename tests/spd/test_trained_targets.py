"""Training, saving, loading and caching toy targets; workloads with trained targets."""

from __future__ import annotations

import math

import pytest
import torch
from spd_workloads import tiny_resid, tiny_tms

from trainfast.spd import (
    RECIPES,
    TargetRecipe,
    get_workload,
    load_target,
    make_trainer,
    save_target,
    train_target,
    trained_target,
)
from trainfast.spd._trained_targets import SHIPPED_DIR


SHORT = TargetRecipe(steps=300, batch_size=256, lr=5e-3)


def test_training_a_tms_target_lowers_its_loss_and_keeps_it_tied():
    t = train_target("tms_5-2", seed=0, recipe=SHORT)
    assert [s for s, _ in t.losses][:2] == [0, 100]
    assert t.losses[-1][0] == SHORT.steps - 1
    assert t.final_loss < 0.3 * t.losses[0][1]
    w1, w2 = t.model.linear1.weight, t.model.linear2.weight
    assert torch.equal(w2, w1.T)  # trained tied; handed back as plain (untied) tensors
    assert w2.data_ptr() != w1.data_ptr()


def test_training_a_resid_mlp_target_lowers_its_loss_and_keeps_the_embedding():
    wl = tiny_resid()
    torch.manual_seed(0)
    before = wl.make_target()
    recipe = TargetRecipe(steps=100, batch_size=256, lr=3e-3, lr_schedule="cosine")
    t = train_target(wl, seed=0, recipe=recipe)
    assert t.final_loss < 0.8 * t.losses[0][1]
    assert torch.equal(t.model.W_E, before.W_E)  # fixed random embedding, as upstream
    assert not torch.equal(t.model.layers[0].mlp_in.weight, before.layers[0].mlp_in.weight)


def test_training_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_target("tms_5-2", recipe=TargetRecipe(steps=2, batch_size=8, lr=1e-3))
    assert torch.equal(torch.rand(3), expected)


def test_save_and_load_round_trip(tmp_path):
    t = train_target("tms_5-2", recipe=TargetRecipe(steps=5, batch_size=8, lr=1e-3))
    path = save_target(t.model, tmp_path / "sub" / "tms.pth")
    loaded = load_target("tms_5-2", path)
    for k, v in t.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_trained_target_trains_once_then_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setitem(RECIPES, "tms_tiny", TargetRecipe(steps=20, batch_size=32, lr=5e-3))
    wl = tiny_tms()
    first = trained_target(wl, seed=3, cache=tmp_path)
    assert (tmp_path / "tms_tiny_seed3.pth").exists()

    def fail(*args, **kwargs):
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr("trainfast.spd._trained_targets.train_target", fail)
    again = trained_target(wl, seed=3, cache=tmp_path)
    for k, v in first.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


def _angles(w1: torch.Tensor) -> list[float]:
    return sorted(math.degrees(math.atan2(float(y), float(x))) % 360 for x, y in w1.T)


def test_shipped_tms_target_is_a_pentagon():
    assert (SHIPPED_DIR / "tms_5-2_seed7.pth").exists()
    model = trained_target("tms_5-2", cache="/nonexistent")  # shipped: no training, no cache
    w1 = model.linear1.weight.detach()
    assert all(n > 0.9 for n in w1.norm(dim=0))  # all five features represented
    angles = _angles(w1)
    gaps = [b - a for a, b in zip(angles, angles[1:])] + [360 + angles[0] - angles[-1]]
    assert all(abs(g - 72) < 5 for g in gaps), gaps
    assert torch.equal(model.linear2.weight, w1.T)


@pytest.mark.slow
def test_shipped_tms_target_is_reproduced_by_its_recipe():
    """The documented command (`--train-target`, seed 7) retrains the shipped file (~12 s)."""
    shipped = trained_target("tms_5-2", cache="/nonexistent")
    again = train_target("tms_5-2", seed=RECIPES["tms_5-2"].seed).model
    for k, v in shipped.state_dict().items():
        # Another CPU's kernels may round differently; the solution must be the same.
        torch.testing.assert_close(again.state_dict()[k], v, rtol=0, atol=1e-2, msg=k)


def test_trained_workload_builds_the_trained_target_and_the_same_components():
    random_wl = get_workload("tms_5-2")
    trained_wl = get_workload("tms_5-2", target="trained")
    assert random_wl.target == "random"
    assert trained_wl.target == "trained (seed 7)"
    shipped = trained_target("tms_5-2", cache="/nonexistent")
    a = make_trainer(random_wl, overrides={"batch_size": 8}, seed=5)
    b = make_trainer(trained_wl, overrides={"batch_size": 8}, seed=5)
    assert torch.equal(b.model.target_model.linear1.weight, shipped.linear1.weight)
    assert not torch.equal(a.model.target_model.linear1.weight, shipped.linear1.weight)
    # Building the trained target draws the same initialisation as the random one, so the
    # components (initialised next) are the same for the same seed.
    assert torch.equal(a.model.component("linear1").V, b.model.component("linear1").V)


def test_unknown_target_kind_is_rejected():
    with pytest.raises(ValueError, match="target must be 'random' or 'trained'"):
        get_workload("tms_5-2", target="pretrained")


def test_cli_trains_and_saves_a_target(tmp_path, monkeypatch, capsys):
    from trainfast.spd.__main__ import main

    monkeypatch.setitem(RECIPES, "tms_5-2", TargetRecipe(steps=20, batch_size=32, lr=5e-3))
    path = tmp_path / "t.pth"
    assert main(["--workload", "tms_5-2", "--seed", "1", "--train-target", str(path)]) == 0
    assert "tms_5-2 seed 1: loss" in capsys.readouterr().out
    expected = train_target("tms_5-2", seed=1).model
    loaded = load_target("tms_5-2", path)
    for k, v in expected.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
