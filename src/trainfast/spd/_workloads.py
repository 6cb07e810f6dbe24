"""The toy workloads: a target model, its data and the SPD config, with upstream's shapes
(../shared/docs/spd.md) — shared by the perf tests, the asv suite and the command line (one
copy, here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._config import SPDConfig
from ._lm import LM_WORKLOADS
from ._targets import ResidMLPModel, SparseFeatureData, TMSModel


@dataclass(frozen=True)
class Workload:
    """A target model, its data and the SPD config, with shapes from the upstream configs.

    The registered workloads build **random** targets: the perf tests only need the shapes,
    and a random target costs the same per step. For decompositions that mean something, use
    `trained()` (upstream's training recipe; shipped, cached or trained on first use) or
    `with_target(...)`.

    Attributes:
        name: the workload's name (also names its trained targets).
        make_target: builds the target (called after the run's seed is set).
        n_features, feature_probability, value_range: the sparse input data.
        config: the SPD settings.
        target: what `make_target` builds, in words (`"random"`, `"trained (seed 0)"`, ...).
    """

    name: str
    make_target: Callable[[], nn.Module]
    n_features: int
    feature_probability: float
    value_range: tuple[float, float]
    config: SPDConfig
    target: str = "random"

    def with_target(self, make_target: Callable[[], nn.Module], target: str) -> Workload:
        """This workload with another target factory, described by `target`."""
        return dataclasses.replace(self, make_target=make_target, target=target)

    def trained(
        self,
        seed: int | None = None,
        *,
        cache: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> Workload:
        """This workload with its target trained by upstream's recipe (see `trained_target`).

        `seed=None` is the recipe's default seed; `device` is where a missing target is
        trained (the run's device is chosen later). The target is looked up (or trained) once,
        here; `make_target` then builds the architecture, drawing the same initialisation
        from the global RNG as the random target, and loads the trained weights into it.
        """
        from ._trained_targets import recipe_for, trained_target  # they import this module

        seed = recipe_for(self).seed if seed is None else seed

        with torch.random.fork_rng(devices=[]):  # loading builds a model: leave the RNG be
            model = trained_target(self, seed, cache=cache, device=device)
            state = model.state_dict()
        random_factory = self.make_target

        def make_target() -> nn.Module:
            model = random_factory()
            model.load_state_dict(state)
            return model

        return self.with_target(make_target, f"trained (seed {seed})")

    def make_data(
        self, batch_size: int, seed: int, device: str | torch.device
    ) -> SparseFeatureData:
        """The synthetic data stream for this workload."""
        return SparseFeatureData(
            self.n_features, batch_size, self.feature_probability, self.value_range, seed, device
        )


def _resid_paths(n_layers: int) -> tuple[str, ...]:
    return tuple(f"layers.{i}.{m}" for i in range(n_layers) for m in ("mlp_in", "mlp_out"))


def tms_workload(
    n_features: int, n_hidden: int, *, name: str | None = None, **config: Any
) -> Workload:
    """A TMS workload; `config` overrides the shared TMS settings (C, loss coeffs, ...)."""
    base = SPDConfig(
        C=config.pop("C", 20),
        target_module_paths=("linear1", "linear2"),
        ci_fn_hidden=(16,),
        batch_size=4096,
        lr=1e-3,
        lr_schedule="cosine",
        tied_weights=(("linear1", "linear2"),),
        eval_freq=1000,
    )
    return Workload(
        name=name or f"tms_{n_features}-{n_hidden}",
        make_target=lambda: TMSModel(n_features, n_hidden),
        n_features=n_features,
        feature_probability=0.05,
        value_range=(0.0, 1.0),
        config=base.replace(config),
    )


def resid_mlp_workload(
    n_layers: int,
    n_features: int,
    d_mlp: int,
    *,
    d_embed: int = 1000,
    name: str | None = None,
    **config: Any,
) -> Workload:
    """A ResidMLP workload; `config` overrides the resid_mlp1 SPD settings.

    Small `d_embed` gives the tiny shapes the CPU tests use.
    """
    base = SPDConfig(C=config.pop("C", 100), target_module_paths=_resid_paths(n_layers))
    return Workload(
        name=name or f"resid_mlp{n_layers}",
        make_target=lambda: ResidMLPModel(n_features, d_embed, d_mlp, n_layers),
        n_features=n_features,
        feature_probability=0.01,
        value_range=(-1.0, 1.0),
        config=base.replace(config),
    )


# Term order is upstream's config order: it fixes the order of the random mask draws.
_RECON_FIRST = {"stochastic_recon": 1.0, "stochastic_recon_layerwise": 1.0}
_LAYERWISE_FIRST = {"stochastic_recon_layerwise": 1.0, "stochastic_recon": 1.0}


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        tms_workload(
            5, 2, C=20, pnorm=1.0, loss_coeffs={"importance_minimality": 3e-3, **_RECON_FIRST}
        ),
        tms_workload(
            40,
            10,
            C=200,
            pnorm=2.0,
            loss_coeffs={"importance_minimality": 1e-4, **_LAYERWISE_FIRST},
        ),
        resid_mlp_workload(
            1, 100, 50, C=100, loss_coeffs={"importance_minimality": 1e-5, **_LAYERWISE_FIRST}
        ),
        resid_mlp_workload(
            2,
            100,
            25,
            C=400,
            ci_fn_type="shared_mlp",
            ci_fn_hidden=(256,),
            loss_coeffs={
                "importance_minimality": 1e-4,
                "stochastic_recon_subset": 2.0,
                "pgd_recon_subset": 2.0,
                "faithfulness": 0.0,
            },
            pgd_n_steps=1,
            pgd_step_size=1.0,
            pgd_mask_scope="shared_across_batch",
            lr=3e-4,
            faithfulness_warmup_weight_decay=0.0,
        ),
        resid_mlp_workload(
            3,
            102,
            17,
            C=500,
            ci_fn_hidden=(128,),
            lr=1e-3,
            loss_coeffs={"importance_minimality": 1e-5, **_LAYERWISE_FIRST},
        ),
    )
}
"""Workload name -> definition, with the SPD settings of upstream's `*_config.yaml` files.

TMS uses cosine lr 1e-3 to 0 and tied components; ResidMLP has d_embed 1000 and constant lr.
"""


def get_workload(name: str, *, target: str = "random", seed: int | None = None) -> Workload:
    """Look a workload up by name.

    Args:
        name: a key of `WORKLOADS` (toys) or `LM_WORKLOADS` (GPT-2, an `LMWorkload`).
        target: `"random"` (the default: shapes only, as the perf tests need) or `"trained"`
            (upstream's recipe, `Workload.trained(seed)`).
        seed: the trained target's seed (`None`: the recipe's default).

    Raises:
        ValueError: unknown name (lists the known ones) or target kind.
    """
    if name in LM_WORKLOADS:  # language models (`_lm.py`): random targets only, for now
        if target != "random":
            raise ValueError(f"workload {name!r} has only a random target, got target={target!r}")
        return LM_WORKLOADS[name]  # type: ignore[return-value]
    if name not in WORKLOADS:
        known = ", ".join([*WORKLOADS, *LM_WORKLOADS])
        raise ValueError(f"unknown workload {name!r}; known workloads: {known}")
    if target == "random":
        return WORKLOADS[name]
    if target == "trained":
        return WORKLOADS[name].trained(seed)
    raise ValueError(f"target must be 'random' or 'trained', got {target!r}")
