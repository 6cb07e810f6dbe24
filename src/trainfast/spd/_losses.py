"""SPD loss terms and `compute_total_loss`, in upstream's definitions and order."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from ._component_model import CIOutputs, ComponentModel
from ._components import MaskInfo
from ._config import SPDConfig
from ._masks import Noise, stochastic_mask_infos, uniform_k_subset_routing


def recon_distance(pred: Tensor, target: Tensor, kind: str) -> tuple[Tensor, int]:
    """Summed distance and the count it should be divided by.

    `mse`: sum of squared errors over all elements, count = numel. `kl`: sum over positions of
    `KL(softmax(target) || softmax(pred))`, count = number of positions.
    """
    if kind == "mse":
        return ((pred - target) ** 2).sum(), pred.numel()
    log_q = F.log_softmax(pred.float(), dim=-1)
    log_p = F.log_softmax(target.float(), dim=-1)
    return F.kl_div(log_q, log_p, reduction="sum", log_target=True), math.prod(pred.shape[:-1])


def faithfulness_loss(weight_deltas: dict[str, Tensor]) -> Tensor:
    """`sum_l ||delta_l||^2 / sum_l numel(delta_l)`."""
    total = sum((d**2).sum() for d in weight_deltas.values())
    return total / sum(d.numel() for d in weight_deltas.values())


def current_pnorm(cfg: SPDConfig, step: int, total_steps: int) -> float:
    """The importance-minimality exponent at `step`, annealed linearly if configured."""
    if cfg.p_anneal_start_frac is None or cfg.p_anneal_final_p is None or total_steps <= 0:
        return cfg.pnorm
    frac = step / total_steps
    start, end = cfg.p_anneal_start_frac, cfg.p_anneal_end_frac
    if frac <= start:
        return cfg.pnorm
    if frac >= end:
        return cfg.p_anneal_final_p
    t = (frac - start) / (end - start)
    return cfg.pnorm + t * (cfg.p_anneal_final_p - cfg.pnorm)


def importance_minimality_loss(
    ci_upper: dict[str, Float[Tensor, "... C"]], pnorm: float, eps: float, beta: float
) -> Tensor:
    """Per layer `sum_c [m_c + beta * m_c * log2(1 + s_c)]`, summed over layers.

    `s_c = sum over examples/positions of (upper_c + eps)^p` and `m_c = s_c / n_examples`.
    """
    total: Tensor | float = 0.0
    for ci in ci_upper.values():
        s = ((ci + eps) ** pnorm).reshape(-1, ci.shape[-1]).sum(0)
        m = s / math.prod(ci.shape[:-1])
        layer = m.sum() if beta == 0 else (m + beta * m * torch.log2(1 + s)).sum()
        total = total + layer
    assert isinstance(total, Tensor)
    return total


@dataclass
class LossContext:
    """What every reconstruction term needs from one step's shared work."""

    model: ComponentModel
    batch: Tensor
    target_out: Tensor
    ci: CIOutputs
    weight_deltas: dict[str, Tensor] | None
    noise: Noise
    cfg: SPDConfig


def _recon(ctx: LossContext, mask_infos: dict[str, MaskInfo]) -> tuple[Tensor, int]:
    out = ctx.model(ctx.batch, mask_infos=mask_infos)
    assert isinstance(out, Tensor)
    return recon_distance(out, ctx.target_out, ctx.cfg.output_loss_type)


def _mean(parts: list[tuple[Tensor, int]]) -> Tensor:
    return sum(p[0] for p in parts) / sum(p[1] for p in parts)


def _leading(ctx: LossContext) -> tuple[int, ...]:
    return tuple(next(iter(ctx.ci.lower.values())).shape[:-1])


def _deltas(ctx: LossContext) -> dict[str, Tensor] | None:
    return ctx.weight_deltas if ctx.cfg.use_delta_component else None


def _samples(ctx: LossContext, routed: bool) -> list[dict[str, MaskInfo]]:
    # All samples are drawn before any forward, as upstream does.
    out = []
    for _ in range(ctx.cfg.n_mask_samples):
        routing = None
        if routed:
            routing = uniform_k_subset_routing(ctx.model.paths, _leading(ctx), ctx.noise)
        out.append(
            stochastic_mask_infos(ctx.ci.lower, _deltas(ctx), ctx.noise, ctx.cfg.sampling, routing)
        )
    return out


def stochastic_recon_loss(ctx: LossContext) -> Tensor:
    """Per sample, one forward with every layer replaced by stochastically masked components."""
    return _mean([_recon(ctx, infos) for infos in _samples(ctx, routed=False)])


def stochastic_recon_layerwise_loss(ctx: LossContext) -> Tensor:
    """Per sample, L forwards, each replacing one layer."""
    parts = []
    for infos in _samples(ctx, routed=False):
        for name in ctx.model.paths:
            parts.append(_recon(ctx, {name: infos[name]}))
    return _mean(parts)


def stochastic_recon_subset_loss(ctx: LossContext) -> Tensor:
    """Like `stochastic_recon_loss`, with a uniform-k subset of layers routed per position."""
    return _mean([_recon(ctx, infos) for infos in _samples(ctx, routed=True)])


def _ci_masks(ctx: LossContext) -> dict[str, MaskInfo]:
    return {name: MaskInfo(ci) for name, ci in ctx.ci.lower.items()}


def ci_masked_recon_loss(ctx: LossContext) -> Tensor:
    """One forward with `mask = ci_lower` in every layer, no delta."""
    return _mean([_recon(ctx, _ci_masks(ctx))])


def ci_masked_recon_layerwise_loss(ctx: LossContext) -> Tensor:
    """L forwards with `mask = ci_lower` in one layer each."""
    infos = _ci_masks(ctx)
    return _mean([_recon(ctx, {name: infos[name]}) for name in ctx.model.paths])


def ci_masked_recon_subset_loss(ctx: LossContext) -> Tensor:
    """One forward with `mask = ci_lower` on a uniform-k subset of layers per position."""
    routing = uniform_k_subset_routing(ctx.model.paths, _leading(ctx), ctx.noise)
    infos = {n: MaskInfo(ci, None, routing[n]) for n, ci in ctx.ci.lower.items()}
    return _mean([_recon(ctx, infos)])


def unmasked_recon_loss(ctx: LossContext) -> Tensor:
    """One forward through the components with no mask (all ones) and no delta."""
    return _mean([_recon(ctx, {name: MaskInfo(None) for name in ctx.model.paths})])


def _pgd(ctx: LossContext, layers: list[str], routing: dict[str, Tensor] | None) -> Tensor:
    """PGD reconstruction for the `layers` replaced together (see ../shared/docs/spd.md section 2).

    The adversarial source `a` (`(*batch, C+1)`, or broadcast over the batch when
    `pgd_mask_scope == "shared_across_batch"`) takes `n_steps` signed-gradient ascent steps on
    the reconstruction loss, clamped to [0, 1]; the final forward is differentiable in V, U and
    the CI functions.
    """
    cfg = ctx.cfg
    lead = _leading(ctx)
    shared = cfg.pgd_mask_scope == "shared_across_batch"
    src_shape = (*([1] * len(lead)), cfg.C + 1) if shared else (*lead, cfg.C + 1)
    sources = {}
    for name in layers:
        if cfg.pgd_init == "random":
            a = ctx.noise.rand(src_shape)
        elif cfg.pgd_init == "ones":
            a = torch.ones(src_shape, device=ctx.batch.device)
        else:
            a = torch.zeros(src_shape, device=ctx.batch.device)
        sources[name] = a.requires_grad_(True)

    def infos(src: dict[str, Tensor]) -> dict[str, MaskInfo]:
        out = {}
        for name in layers:
            a, ci = src[name], ctx.ci.lower[name]
            if not ctx.model.flags.lazy_logging:
                assert (a >= 0).all()  # upstream's range checks (host syncs)
                assert (a <= 1).all()
            mask = ci + (1 - ci) * a[..., : cfg.C]
            delta = None
            if (deltas := _deltas(ctx)) is not None:
                delta = (deltas[name], a[..., -1].expand(lead))
            out[name] = MaskInfo(mask, delta, "all" if routing is None else routing[name])
        return out

    for _ in range(cfg.pgd_n_steps):
        dist, n = _recon(ctx, infos(sources))
        grads = torch.autograd.grad(dist / n, list(sources.values()), retain_graph=True)
        with torch.no_grad():
            sources = {
                name: (a + cfg.pgd_step_size * g.sign()).clamp(0.0, 1.0)
                for (name, a), g in zip(sources.items(), grads)
            }
    final = {name: a.detach() for name, a in sources.items()}
    return _mean([_recon(ctx, infos(final))])


def pgd_recon_loss(ctx: LossContext) -> Tensor:
    """PGD with every layer replaced."""
    return _pgd(ctx, ctx.model.paths, None)


def pgd_recon_subset_loss(ctx: LossContext) -> Tensor:
    """PGD with a uniform-k subset of layers routed per position."""
    routing = uniform_k_subset_routing(ctx.model.paths, _leading(ctx), ctx.noise)
    return _pgd(ctx, ctx.model.paths, routing)


def pgd_recon_layerwise_loss(ctx: LossContext) -> Tensor:
    """PGD for each layer on its own; the mean over layers."""
    return sum(_pgd(ctx, [name], None) for name in ctx.model.paths) / len(ctx.model.paths)


_RECON_TERMS = {
    "stochastic_recon": stochastic_recon_loss,
    "stochastic_recon_layerwise": stochastic_recon_layerwise_loss,
    "stochastic_recon_subset": stochastic_recon_subset_loss,
    "ci_masked_recon": ci_masked_recon_loss,
    "ci_masked_recon_layerwise": ci_masked_recon_layerwise_loss,
    "ci_masked_recon_subset": ci_masked_recon_subset_loss,
    "unmasked_recon": unmasked_recon_loss,
    "pgd_recon": pgd_recon_loss,
    "pgd_recon_subset": pgd_recon_subset_loss,
    "pgd_recon_layerwise": pgd_recon_layerwise_loss,
}


def compute_loss_term(name: str, ctx: LossContext, pnorm: float) -> Tensor:
    """One loss term by name (see `LOSS_TERMS`)."""
    if name == "faithfulness":
        assert ctx.weight_deltas is not None
        return faithfulness_loss(ctx.weight_deltas)
    if name == "importance_minimality":
        cfg = ctx.cfg
        return importance_minimality_loss(
            ctx.ci.upper, pnorm, cfg.importance_minimality_eps, cfg.importance_minimality_beta
        )
    return _RECON_TERMS[name](ctx)


def compute_total_loss(
    ctx: LossContext, pnorm: float, *, sync_terms: bool
) -> tuple[Tensor, dict[str, Tensor | float]]:
    """Weighted sum of the configured terms, in config order.

    Args:
        ctx: the step's shared tensors.
        pnorm: current importance-minimality exponent.
        sync_terms: upstream logs `loss.item()` per term and for the total (one host sync
            each); with `False` the terms stay device tensors (detached).

    Returns:
        `(total, terms)`; `terms` also holds `"total"`.
    """
    total: Tensor | float = 0.0
    terms: dict[str, Tensor | float] = {}
    for name, coeff in ctx.cfg.loss_coeffs.items():
        loss = compute_loss_term(name, ctx, pnorm)
        terms[name] = loss.item() if sync_terms else loss.detach()
        total = total + coeff * loss
    assert isinstance(total, Tensor)
    terms["total"] = total.item() if sync_terms else total.detach()
    return total, terms
