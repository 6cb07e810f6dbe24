"""Training configuration (SPDConfig, with the defaults and loss terms of ../shared/docs/spd.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
