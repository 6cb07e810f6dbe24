"""Flag parsing and the errors for bad input (names, devices, workloads, modules, C)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainfast.spd import (
    EXACT_FLAGS,
    ComponentModel,
    Flags,
    LinearComponents,
    get_workload,
    make_trainer,
    run,
)
from trainfast.spd._config import SPDConfig


def test_parse_forms():
    assert Flags.parse(None) == Flags()
    assert Flags.parse(["lean_gc"]).lean_gc
    assert Flags.parse({"prefetch": True, "lean_gc": False}).on() == ("prefetch",)
    assert Flags.parse("bf16").bf16
    assert set(Flags.exact().on()) == set(EXACT_FLAGS)
    assert "bf16" not in Flags.fastest("cpu").on()
    assert not Flags.fastest("cpu").cuda_graphs
    assert Flags.fastest("cuda").cuda_graphs


def test_hook_mode():
    assert Flags().hook_mode == "per_call"
    assert Flags(persistent_hooks=True).hook_mode == "persistent"
    assert Flags(persistent_hooks=True, explicit_forward=True).hook_mode == "explicit"


def test_unknown_flag_is_named():
    with pytest.raises(ValueError, match=r"unknown flag 'fused_adam'; known flags: .*fused_adamw"):
        Flags.parse(["fused_adam"])


def test_flag_value_must_be_bool():
    with pytest.raises(ValueError, match="flag 'bf16' must be a bool"):
        Flags.parse({"bf16": 1})


def test_cuda_flag_on_cpu_is_named():
    with pytest.raises(
        ValueError, match=r"flag 'cuda_graphs' needs device='cuda'; got device='cpu'"
    ):
        make_trainer("tms_5-2", flags=["cuda_graphs"], device="cpu")


def test_unknown_workload_is_named():
    with pytest.raises(
        ValueError, match=r"unknown workload 'resid_mlp9'; known workloads: .*resid_mlp3"
    ):
        run("resid_mlp9", 1)
    with pytest.raises(ValueError, match="unknown workload"):
        get_workload("tms")


def test_unknown_override_is_named():
    with pytest.raises(ValueError, match="unknown config override 'batchsize'"):
        make_trainer("tms_5-2", overrides={"batchsize": 3})


def test_bad_loss_term_is_named():
    with pytest.raises(ValueError, match="unknown loss term 'recon'"):
        make_trainer("tms_5-2", overrides={"loss_coeffs": {"recon": 1.0}})


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.fc(x))


def test_module_path_not_a_linear():
    cfg = SPDConfig(C=2, target_module_paths=("act",))
    with pytest.raises(ValueError, match=r"target module path 'act' is a ReLU, not an nn.Linear"):
        ComponentModel(_Net(), cfg, Flags())


def test_module_path_missing():
    cfg = SPDConfig(C=2, target_module_paths=("fc2",))
    with pytest.raises(ValueError, match=r"target module path 'fc2' names no submodule"):
        ComponentModel(_Net(), cfg, Flags())


@pytest.mark.parametrize("C", [0, -3])
def test_nonpositive_C(C):
    with pytest.raises(ValueError, match=rf"C must be a positive number of components, got C={C}"):
        LinearComponents(4, 3, C, None)
    with pytest.raises(ValueError, match="C must be a positive"):
        make_trainer("tms_5-2", overrides={"C": C})


def test_cuda_device_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error is for machines without it")
    with pytest.raises(ValueError, match="device='cuda' was requested but CUDA is not available"):
        make_trainer("tms_5-2", device="cuda")
