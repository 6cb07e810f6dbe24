"""Settings checked against upstream (`goodfire-ai/spd`): schedule, CI-fn init, configs."""

from __future__ import annotations

import math

import pytest
import torch

from trainfast.spd import WORKLOADS, SPDConfig
from trainfast.spd._components import MLPCiFn, SharedMLPCiFn, VectorMLPCiFn
from trainfast.spd._loop import lr_at


def _cfg(**kw: object) -> SPDConfig:
    return SPDConfig(C=1, target_module_paths=("a",)).replace(kw)


def test_cosine_decays_to_the_floor_at_the_last_update():
    cfg = _cfg(lr=1.0, lr_schedule="cosine", lr_final_frac=0.1)
    assert lr_at(cfg, 0, 11) == 1.0
    assert math.isclose(lr_at(cfg, 5, 11), 0.55)  # halfway: floor + (1 - floor) / 2
    assert math.isclose(lr_at(cfg, 10, 11), 0.1)  # step 10 is the last update of 11


def test_linear_decay_and_warmup_from_zero():
    cfg = _cfg(lr=2.0, lr_schedule="linear", lr_warmup_frac=0.2)
    assert lr_at(cfg, 0, 10) == 0.0
    assert lr_at(cfg, 1, 10) == 1.0
    assert lr_at(cfg, 2, 10) == 2.0  # decay starts after the two warm-up steps
    assert math.isclose(lr_at(cfg, 9, 10), 0.0, abs_tol=1e-12)


def test_constant_and_one_step_schedules_do_not_decay():
    assert lr_at(_cfg(lr=3.0), 7, 10) == 3.0
    assert lr_at(_cfg(lr=3.0, lr_schedule="cosine"), 0, 1) == 3.0


def test_negative_floor_is_rejected():
    with pytest.raises(ValueError, match="lr_final_frac"):
        _cfg(lr_final_frac=-0.5)


@pytest.mark.parametrize(
    "fn",
    [
        lambda: MLPCiFn(4000, (16,)),
        lambda: VectorMLPCiFn(400, 16, (16,)),
    ],
)
def test_ci_fn_last_layer_has_linear_gain(fn):
    torch.manual_seed(0)
    first, last = fn().layers
    fan_first, fan_last = first.W.shape[1], last.W.shape[1]
    # Hidden layers: ReLU gain sqrt(2); the last layer, which no nonlinearity follows: gain 1.
    assert math.isclose(first.W.std().item(), math.sqrt(2 / fan_first), rel_tol=0.05)
    assert math.isclose(last.W.std().item(), math.sqrt(1 / fan_last), rel_tol=0.05)


def test_shared_ci_fn_last_layer_has_linear_gain():
    torch.manual_seed(0)
    fn = SharedMLPCiFn(4000, 64, (256,))
    assert math.isclose(fn.weights[0].std().item(), math.sqrt(2 / 64), rel_tol=0.05)
    assert math.isclose(fn.weights[1].std().item(), math.sqrt(1 / 256), rel_tol=0.05)


def test_workloads_use_upstreams_config_values():
    for w in WORKLOADS.values():
        assert w.config.ci_alive_threshold == 0.1
    tms = WORKLOADS["tms_5-2"].config
    assert (tms.lr, tms.lr_schedule, tms.lr_final_frac) == (1e-3, "cosine", 0.0)
    assert list(tms.loss_coeffs) == [
        "importance_minimality",
        "stochastic_recon",
        "stochastic_recon_layerwise",
    ]
    r2 = WORKLOADS["resid_mlp2"].config
    assert (r2.pgd_step_size, r2.faithfulness_warmup_weight_decay, r2.lr) == (1.0, 0.0, 3e-4)
    assert WORKLOADS["resid_mlp3"].config.lr == 1e-3
    assert list(WORKLOADS["resid_mlp1"].config.loss_coeffs)[1] == "stochastic_recon_layerwise"
