"""Training configuration and the toy workloads (target shapes and SPD settings from spd.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._targets import ResidMLPModel, SparseFeatureData, TMSModel


LOSS_TERMS: tuple[str, ...] = (
    "faithfulness",
    "importance_minimality",
    "stochastic_recon",
    "stochastic_recon_layerwise",
    "stochastic_recon_subset",
    "ci_masked_recon",
    "ci_masked_recon_layerwise",
    "ci_masked_recon_subset",
    "unmasked_recon",
    "pgd_recon",
    "pgd_recon_subset",
    "pgd_recon_layerwise",
)


@dataclass(frozen=True)
class SPDConfig:
    """Everything `train` needs besides the target and the data.

    Attributes:
        C: components per decomposed module.
        target_module_paths: dotted paths of the Linears to decompose, in order.
        ci_fn_type: `mlp`, `vector_mlp` or `shared_mlp`.
        ci_fn_hidden: hidden widths of the CI function.
        sigmoid_type: `leaky_hard` (lower/upper leaky), `hard` or `normal`.
        sampling: `continuous` (`r ~ U[0,1]`) or `binomial` (`r ~ {0,1}`).
        use_delta_component: add `W_target - (VU)^T` as an extra masked component.
        loss_coeffs: loss term name -> coefficient, in computation order.
        output_loss_type: `mse` or `kl`.
        pnorm: importance-minimality exponent at the start; annealed linearly to
            `p_anneal_final_p` between the two fractions of `steps` (no annealing if `None`).
        importance_minimality_beta, importance_minimality_eps: the log2 term's weight and eps.
        n_mask_samples: stochastic mask samples per step.
        pgd_n_steps, pgd_step_size, pgd_init, pgd_mask_scope: PGD reconstruction settings.
        batch_size: examples per step.
        lr, lr_schedule, lr_warmup_frac, lr_final_frac: AdamW learning rate (weight decay 0)
            and its schedule (see `lr_at`): `cosine` and `linear` decay to
            `lr * lr_final_frac`. Upstream's default floor is 1.0 (no decay); every upstream
            config that decays sets 0.0, which is the default here.
        faithfulness_warmup_steps, faithfulness_warmup_lr, faithfulness_warmup_weight_decay:
            warm-up of the components alone on the faithfulness loss.
        grad_clip_norm: clip component and CI-fn gradients to this norm (`None` = no clipping).
        train_log_freq, eval_freq, n_eval_steps, slow_eval_freq, save_freq: cadence (`None` off).
        ci_alive_threshold: a component is firing where its `ci_lower` exceeds this; used for
            the logged L0. Upstream's field defaults to 0.0 but every toy config sets 0.1.
        tied_weights: `(src, tgt)` module pairs whose components share storage,
            `U_tgt = V_src^T` and `V_tgt = U_src^T` (component `c` of `tgt` is component `c` of
            `src` transposed), for targets whose `tgt` weight is `src`'s transposed.
    """

    C: int
    target_module_paths: tuple[str, ...]
    ci_fn_type: str = "mlp"
    ci_fn_hidden: tuple[int, ...] = (16,)
    sigmoid_type: str = "leaky_hard"
    sampling: str = "continuous"
    use_delta_component: bool = True
    loss_coeffs: Mapping[str, float] = field(
        default_factory=lambda: {
            "importance_minimality": 1e-5,
            "stochastic_recon": 1.0,
            "stochastic_recon_layerwise": 1.0,
        }
    )
    output_loss_type: str = "mse"
    pnorm: float = 2.0
    p_anneal_start_frac: float | None = None
    p_anneal_final_p: float | None = None
    p_anneal_end_frac: float = 1.0
    importance_minimality_beta: float = 0.0
    importance_minimality_eps: float = 1e-12
    n_mask_samples: int = 1
    pgd_n_steps: int = 1
    pgd_step_size: float = 0.1
    pgd_init: str = "random"
    pgd_mask_scope: str = "unique_per_datapoint"
    batch_size: int = 2048
    lr: float = 2e-3
    lr_schedule: str = "constant"
    lr_warmup_frac: float = 0.0
    lr_final_frac: float = 0.0
    faithfulness_warmup_steps: int = 200
    faithfulness_warmup_lr: float = 0.01
    faithfulness_warmup_weight_decay: float = 0.1
    grad_clip_norm: float | None = None
    train_log_freq: int = 50
    eval_freq: int | None = 500
    n_eval_steps: int = 100
    slow_eval_freq: int | None = 5000
    save_freq: int | None = None
    ci_alive_threshold: float = 0.1
    tied_weights: tuple[tuple[str, str], ...] = ()

    def replace(self, overrides: Mapping[str, Any] | None) -> SPDConfig:
        """Return a copy with `overrides` applied.

        Raises:
            ValueError: an override names no config field (lists the fields).
        """
        if not overrides:
            return self
        known = [f.name for f in dataclasses.fields(self)]
        for name in overrides:
            if name not in known:
                raise ValueError(f"unknown config override {name!r}; known: {', '.join(known)}")
        cfg = dataclasses.replace(self, **overrides)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check values that would otherwise fail deep inside training.

        Raises:
            ValueError: naming the field and the rule.
        """
        if self.C <= 0:
            raise ValueError(f"C must be a positive number of components, got C={self.C}")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        for name in self.loss_coeffs:
            if name not in LOSS_TERMS:
                raise ValueError(f"unknown loss term {name!r}; known: {', '.join(LOSS_TERMS)}")
        if self.output_loss_type not in ("mse", "kl"):
            raise ValueError(
                f"output_loss_type must be 'mse' or 'kl', got {self.output_loss_type!r}"
            )
        if self.sampling not in ("continuous", "binomial"):
            raise ValueError(f"sampling must be 'continuous' or 'binomial', got {self.sampling!r}")
        if self.lr_final_frac < 0:
            raise ValueError(f"lr_final_frac must be >= 0, got {self.lr_final_frac}")
        if self.lr_schedule not in ("constant", "cosine", "linear"):
            raise ValueError(
                f"lr_schedule must be 'constant', 'cosine' or 'linear', got {self.lr_schedule!r}"
            )


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
        name: a key of `WORKLOADS`.
        target: `"random"` (the default: shapes only, as the perf tests need) or `"trained"`
            (upstream's recipe, `Workload.trained(seed)`).
        seed: the trained target's seed (`None`: the recipe's default).

    Raises:
        ValueError: unknown name (lists the known ones) or target kind.
    """
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; known workloads: {', '.join(WORKLOADS)}")
    if target == "random":
        return WORKLOADS[name]
    if target == "trained":
        return WORKLOADS[name].trained(seed)
    raise ValueError(f"target must be 'random' or 'trained', got {target!r}")
