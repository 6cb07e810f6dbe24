"""The SPD training loop (`Trainer`), in upstream order, with every optimization behind a flag.

One call of `Trainer.step()` is one iteration of upstream's `for step in range(steps + 1)`:

1. zero grads, set the lr; 2. weight deltas (on the graph); 3. next batch; 4. target forward
with input caching, causal importances, loss terms (under bf16 autocast if asked);
5. backward; 6. per-step L0 of the CI; 7. train log every `train_log_freq` (grad norms taken
before clipping); 8. eval every `eval_freq`; 9. checkpoint; 10. unless this is the last
iteration: clip and `optimizer.step()`.

The baseline keeps upstream's costs: per-forward hooks, `.item()` per loss term / L0 and the
CI `assert`s (host syncs), synchronous `torch.save`, `empty_cache` + `gc.collect` after eval.
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ._component_model import ComponentModel, tie_components
from ._config import SPDConfig
from ._flags import Flags
from ._io import Checkpointer, JsonlLogger
from ._losses import (
    LossContext,
    compute_loss_term,
    compute_total_loss,
    current_pnorm,
    faithfulness_loss,
)
from ._masks import Draw, LiveNoise, PredrawnNoise, RecordingNoise, predraw
from ._targets import Prefetcher
from ._workloads import Workload, get_workload


_EAGER_STEPS_BEFORE_CAPTURE = 3
"""Eager steps (on a side stream) before capturing the CUDA graph: they create the optimizer
state, run any compilation and initialise cuBLAS, none of which may happen during capture."""

_EVAL_TERMS = (
    "stochastic_recon",
    "stochastic_recon_layerwise",
    "ci_masked_recon",
    "importance_minimality",
    "faithfulness",
)


def lr_at(cfg: SPDConfig, step: int, total_steps: int) -> float:
    """Learning rate at `step` of `total_steps`, as upstream's `get_scheduled_value`.

    Linear warm-up from 0 over the first `int(lr_warmup_frac * total_steps)` steps, then
    `constant`, or `cosine`/`linear` decay from `lr` to `lr * lr_final_frac`, reached at step
    `total_steps - 1` (the last update; iteration `total_steps` makes none).
    """
    warmup = int(cfg.lr_warmup_frac * total_steps)
    if step < warmup:
        return cfg.lr * step / warmup
    decay_steps = total_steps - warmup
    if cfg.lr_schedule == "constant" or decay_steps <= 1:
        return cfg.lr
    progress = (step - warmup) / (decay_steps - 1)
    floor = cfg.lr_final_frac
    if cfg.lr_schedule == "cosine":
        return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    return cfg.lr * (floor + (1 - floor) * (1 - progress))


class _Blocking:
    """Upstream's data path: `next(batch).to(device)`, a blocking copy (no-op if already there)."""

    def __init__(self, source: Iterator[Tensor], device: torch.device):
        self.source, self.device = source, device

    def __next__(self) -> Tensor:
        return next(self.source).to(self.device)


class Trainer:
    """SPD on one workload: build everything once, then call `step()` per iteration.

    Args:
        workload: a name from `WORKLOADS` (e.g. `"resid_mlp1"`) or a `Workload`.
        steps: number of optimizer updates; iterations run `0..steps`, the last one only logs,
            evaluates and saves (as upstream). Also sets the lr schedule's length.
        flags: `Flags`, a `{name: bool}` mapping, names to switch on, or `None` (baseline).
        seed: seeds the global RNG (initialisation, masks); data uses `seed + 1` (train) and
            `seed + 2` (eval) in their own generators.
        device: `"cpu"` or `"cuda"`.
        out_dir: where `metrics.jsonl` and checkpoints go; `None` writes nothing.
        overrides: `SPDConfig` fields to replace (e.g. `{"batch_size": 64}` in tests).

    Raises:
        ValueError: unknown workload, flag or override; a flag the device cannot run; bad
            module paths or C.
    """

    def __init__(
        self,
        workload: str | Workload,
        *,
        steps: int,
        flags: Flags | Mapping[str, bool] | list[str] | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        out_dir: str | Path | None = None,
        overrides: Mapping[str, Any] | None = None,
    ):
        self.flags = Flags.parse(flags)
        self.device = torch.device(device)
        self.flags.check_device(str(self.device))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was requested but CUDA is not available")
        self.workload = get_workload(workload) if isinstance(workload, str) else workload
        cfg = self.workload.config.replace(overrides)
        cfg.validate()
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        self.cfg, self.steps, self.step_idx = cfg, steps, 0
        self.lazy = self.flags.lazy_logging
        self.cuda_graphs = self.flags.cuda_graphs

        torch.manual_seed(seed)
        target = self.workload.make_target().to(self.device)
        self.model = ComponentModel(target, cfg, self.flags).to(self.device)
        tie_components(self.model, cfg.tied_weights)
        self.params = self.model.component_parameters() + self.model.ci_parameters()
        lr: float | Tensor = cfg.lr
        if self.cuda_graphs:  # the lr must live on the device to change inside a graph
            lr = torch.tensor(cfg.lr, device=self.device)
        self.optimizer = self._adamw(self.params, lr=lr, weight_decay=0.0)

        self.train_iter: Any
        if hasattr(self.workload, "train_batches"):
            # Host-side data (the LM workloads, `_lm.py`): the workload builds its DataLoader
            # and copy path, where the data flags act.
            self.train_iter = self.workload.train_batches(
                cfg.batch_size, seed + 1, self.device, self.flags
            )
        else:
            data = self.workload.make_data(cfg.batch_size, seed + 1, self.device)
            self.train_iter = (
                Prefetcher(iter(data), self.device)
                if self.flags.prefetch
                else _Blocking(iter(data), self.device)
            )
        self.eval_data = self.workload.make_data(cfg.batch_size, seed + 2, self.device)

        out = None if out_dir is None else Path(out_dir)
        self.logger = JsonlLogger(None if out is None else out / "metrics.jsonl")
        self.checkpointer = Checkpointer(out, asynchronous=self.flags.async_checkpoint)

        self.history: list[dict[str, float]] = []
        self.eval_history: list[dict[str, float]] = []
        self.warmup_losses: list[float] = []
        self._pending: list[tuple[int, list[str], Tensor]] = []
        self._plan: list[Draw] | None = None
        self._compiled = None
        if self.flags.compile:
            # One frame (`ComponentModel._sub`) is entered once per decomposed module, each with
            # its own shapes and mask key: with 3-layer models that exceeds Dynamo's default
            # recompile limit (8), and past it the frame silently runs eagerly (seen on the
            # H100: "hit config.recompile_limit (8) function: '_sub'").
            _raise_recompile_limit(64)
            self._compiled = torch.compile(self._forward_loss)
        self._graphs: tuple[torch.cuda.CUDAGraph, torch.cuda.CUDAGraph] | None = None
        self._side = torch.cuda.Stream(self.device) if self.cuda_graphs else None

    # ------------------------------------------------------------------------- building blocks
    def _adamw(self, params: list[Tensor], lr: float | Tensor, weight_decay: float) -> Any:
        kw: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
        if self.flags.fused_adamw:
            kw["fused"] = True
        if self.cuda_graphs:
            kw["capturable"] = True
        return torch.optim.AdamW(params, **kw)  # upstream: the default (foreach on CUDA)

    def _autocast(self) -> Any:
        if not self.flags.bf16:
            return contextlib.nullcontext()
        # The autocast weight cache must be off under graph capture (cached casts would be
        # graph-private allocations reused across replays).
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, cache_enabled=not self.cuda_graphs
        )

    def _cleanup(self) -> None:
        # Upstream order (a TODO there says it should be reversed).
        if self.flags.lean_gc:
            return
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        gc.collect()

    def _forward_loss(
        self, batch: Tensor, pnorm: float | Tensor, noise: Any
    ) -> tuple[Tensor, dict[str, Tensor | float], dict[str, Tensor]]:
        """Weight deltas, target forward with cache, CI, total loss, per-layer L0 (not synced)."""
        if isinstance(noise, list):  # compiled path: tensors pre-drawn outside the graph
            assert self._plan is not None
            noise = PredrawnNoise(noise, self._plan)
        weight_deltas = self.model.calc_weight_deltas()
        with self._autocast():
            target_out, cache = self.model(batch, cache_type="input")
            ci = self.model.calc_causal_importances(cache, self.cfg.sampling, noise)
            ctx = LossContext(self.model, batch, target_out, ci, weight_deltas, noise, self.cfg)
            total, terms = compute_total_loss(ctx, pnorm, sync_terms=not self.lazy)
        thr = self.cfg.ci_alive_threshold
        l0 = {n: (c > thr).float().sum(-1).mean() for n, c in ci.lower.items()}
        return total, terms, l0

    def _run_forward_loss(
        self, batch: Tensor, pnorm: float | Tensor
    ) -> tuple[Tensor, dict[str, Tensor | float], dict[str, Tensor]]:
        if self._compiled is None:
            return self._forward_loss(batch, pnorm, LiveNoise(self.device))
        if self._plan is None:  # first call: eager, learning the sequence of random draws
            noise = RecordingNoise(self.device)
            out = self._forward_loss(batch, pnorm, noise)
            self._plan = noise.plan
            return out
        return self._compiled(batch, pnorm, predraw(self._plan, self.device))

    # ------------------------------------------------------------------------- logging
    def _record(self, step: int, terms: dict[str, Any], l0: dict[str, Tensor]) -> None:
        names = list(terms) + [f"l0/{n}" for n in l0]
        if not self.lazy:
            rec = {k: float(v) for k, v in terms.items()}
            rec.update({f"l0/{n}": v.item() for n, v in l0.items()})  # one sync per layer
            self.history.append(rec)
            return
        values = [torch.as_tensor(v).float() for v in terms.values()] + [v for v in l0.values()]
        # Detached: a pending record must not keep its step's autograd graph alive until the
        # next flush (memory, and under cuda_graphs AccumulateGrad nodes of an old stream).
        self._pending.append((step, names, torch.stack(values).detach()))

    def _flush(self) -> None:
        """Copy pending device-side records to the host in one transfer."""
        if not self._pending:
            return
        host = torch.stack([p[2] for p in self._pending]).cpu()
        for (_, names, _), row in zip(self._pending, host):
            self.history.append({n: v.item() for n, v in zip(names, row)})
        self._pending.clear()

    def _grad_norms(self, norms: Tensor | None = None) -> dict[str, float]:
        named = [(f"{n}", p) for n, p in self.model.named_parameters() if p.requires_grad]
        if norms is None:
            if not self.lazy:
                return {f"grad_norm/{n}": p.grad.norm().item() for n, p in named}
            norms = torch.stack([p.grad.norm() for _, p in named])
        values = norms.cpu()
        return {f"grad_norm/{n}": v.item() for (n, _), v in zip(named, values)}

    def _train_log(self, step: int, norms: Tensor | None = None) -> None:
        grad_norms = self._grad_norms(norms)
        self._flush()
        lr = lr_at(self.cfg, step, self.steps)
        self.logger.log({"step": step, "lr": lr, **self.history[-1], **grad_norms})

    # ------------------------------------------------------------------------- eval / save
    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, float]:
        """`n_eval_steps` no-grad batches of the eval metrics; logged and returned."""
        cfg = self.cfg
        weight_deltas = self.model.calc_weight_deltas()
        pnorm = current_pnorm(cfg, step, self.steps)
        sums: dict[str, Tensor] = {}
        for _ in range(cfg.n_eval_steps):
            batch = self.eval_data.next()
            target_out, cache = self.model(batch, cache_type="input")
            noise = LiveNoise(self.device)
            ci = self.model.calc_causal_importances(cache, cfg.sampling, noise)
            ctx = LossContext(self.model, batch, target_out, ci, weight_deltas, noise, cfg)
            values = {f"eval/{n}": compute_loss_term(n, ctx, pnorm) for n in _EVAL_TERMS}
            for n, c in ci.lower.items():
                values[f"eval/l0/{n}"] = (c > cfg.ci_alive_threshold).float().sum(-1).mean()
            for k, v in values.items():
                sums[k] = sums[k] + v if k in sums else v
        metrics = {k: (v / max(1, cfg.n_eval_steps)).item() for k, v in sums.items()}
        self.eval_history.append({"step": step, **metrics})
        self.logger.log({"step": step, **metrics})
        self._cleanup()
        return metrics

    def _eval_and_save(self, step: int) -> None:
        cfg = self.cfg
        if cfg.eval_freq and step % cfg.eval_freq == 0:
            self.evaluate(step)
        if (cfg.save_freq and step % cfg.save_freq == 0 and step > 0) or step == self.steps:
            self.checkpointer.save(self.model.state_dict(), step)

    # ------------------------------------------------------------------------- the step
    def faithfulness_warmup(self) -> None:
        """Train the components alone on the faithfulness loss (`faithfulness_warmup_steps`)."""
        n = self.cfg.faithfulness_warmup_steps
        if n <= 0:
            return
        params = self.model.component_parameters()
        opt = torch.optim.AdamW(
            params,
            lr=self.cfg.faithfulness_warmup_lr,
            weight_decay=self.cfg.faithfulness_warmup_weight_decay,
            **({"fused": True} if self.flags.fused_adamw else {}),
        )
        for i in range(n):
            opt.zero_grad(set_to_none=True)
            loss = faithfulness_loss(self.model.calc_weight_deltas())
            loss.backward()
            opt.step()
            if i % 100 == 0 or i == n - 1:
                self.warmup_losses.append(loss.item())
        self._cleanup()

    def step(self) -> Tensor:
        """Run one iteration (see the module docstring); returns the total loss (a tensor)."""
        s = self.step_idx
        if s > self.steps:
            raise RuntimeError(f"all {self.steps + 1} iterations have run (steps={self.steps})")
        graphed = self.cuda_graphs and s != self.steps
        if graphed and s >= _EAGER_STEPS_BEFORE_CAPTURE:
            total = self._graph_step(s)
        elif graphed:
            assert self._side is not None
            self._side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self._side):
                total = self._eager_step(s)
            torch.cuda.current_stream(self.device).wait_stream(self._side)
        else:
            total = self._eager_step(s)
        self.step_idx += 1
        return total

    def _set_lr(self, step: int) -> None:
        lr = lr_at(self.cfg, step, self.steps)
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr

    def _pnorm(self, step: int) -> float | Tensor:
        p = current_pnorm(self.cfg, step, self.steps)
        if self.cuda_graphs:  # baked into the graph otherwise; a device scalar can change
            if not hasattr(self, "_pnorm_t"):
                self._pnorm_t = torch.tensor(p, device=self.device)
            self._pnorm_t.fill_(p)
            return self._pnorm_t
        return p

    def _eager_step(self, s: int) -> Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        self._set_lr(s)
        batch = next(self.train_iter)
        total, terms, l0 = self._run_forward_loss(batch, self._pnorm(s))
        total.backward()
        self._record(s, terms, l0)
        if s % self.cfg.train_log_freq == 0:
            self._train_log(s)
        self._eval_and_save(s)
        if s != self.steps:
            self._clip()
            self.optimizer.step()
        return total

    def _clip(self) -> None:
        if self.cfg.grad_clip_norm is None:
            return
        comp, ci = self.model.component_parameters(), self.model.ci_parameters()
        torch.nn.utils.clip_grad_norm_(comp, self.cfg.grad_clip_norm)
        torch.nn.utils.clip_grad_norm_(ci, self.cfg.grad_clip_norm)

    def _capture(self, batch: Tensor) -> None:
        """Capture forward+backward (graph 1) and clip+optimizer step (graph 2).

        Two graphs keep upstream's order: eval and checkpoints see the parameters before the
        update. Random numbers drawn inside graph 1 come from the graph-safe Philox offsets of
        the default generator, so they differ from eager (statistically equivalent).
        """
        self._static_batch = batch.clone()
        self._static_pnorm = self._pnorm(self.step_idx)
        self.optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize(self.device)
        g1, g2 = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        named = [p for _, p in self.model.named_parameters() if p.requires_grad]
        # Captured on the side stream the eager warm-up steps ran on: the parameters'
        # AccumulateGrad nodes then see gradients from the stream they were created on (with
        # the default fresh capture stream autograd warned of a cross-stream sync).
        with torch.cuda.graph(g1, stream=self._side):
            total, terms, l0 = self._run_forward_loss(self._static_batch, self._static_pnorm)
            total.backward()
            norms = torch.stack([p.grad.norm() for p in named])  # before clipping, as logged
        with torch.cuda.graph(g2, pool=g1.pool(), stream=self._side):
            self._clip()
            self.optimizer.step()
        # Detached views of the static outputs (replays refill the same memory): holding the
        # captured autograd graph would keep AccumulateGrad nodes of the capture stream alive
        # into the final, eager iteration on the default stream.
        self._static = (
            total.detach(),
            {k: v.detach() if isinstance(v, Tensor) else v for k, v in terms.items()},
            {k: v.detach() for k, v in l0.items()},
            norms,
        )
        self._graphs = (g1, g2)

    def _graph_step(self, s: int) -> Tensor:
        self._set_lr(s)
        self._pnorm(s)
        batch = next(self.train_iter)
        if self._graphs is None:
            self._capture(batch)
        assert self._graphs is not None
        g1, g2 = self._graphs
        self._static_batch.copy_(batch)
        g1.replay()
        total, terms, l0, norms = self._static
        self._record(s, terms, l0)
        if s % self.cfg.train_log_freq == 0:
            self._train_log(s, norms)
        self._eval_and_save(s)
        g2.replay()
        return total

    def close(self) -> None:
        """Flush device-side records, wait for checkpoint writes, stop data workers."""
        self._flush()
        self.checkpointer.close()
        close_data = getattr(self.train_iter, "close", None)  # host-side loaders (LM)
        if close_data is not None:
            close_data()


def make_trainer(
    workload: str | Workload,
    *,
    flags: Flags | Mapping[str, bool] | list[str] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    steps: int = 100_000,
    out_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    eval: bool = False,
) -> Trainer:
    """A `Trainer` set up for timing: `trainer.step()` is one training iteration.

    Used by the perf tests, the CLI and the asv suite, so all time the same code. By default
    evaluation is off (its cost is amortised over `eval_freq` steps and reported separately),
    nothing is written, and `steps` is large so no iteration is the final, update-free one.

    Example:
        >>> trainer = make_trainer("tms_5-2", overrides={"batch_size": 8})
        >>> loss = trainer.step()
    """
    extra = dict(overrides or {})
    if not eval:
        extra.setdefault("eval_freq", None)
    return Trainer(
        workload,
        steps=steps,
        flags=flags,
        seed=seed,
        device=device,
        out_dir=out_dir,
        overrides=extra,
    )


def _raise_recompile_limit(limit: int) -> None:
    """Let Dynamo keep up to `limit` compiled variants per frame (never lowers it)."""
    import torch._dynamo

    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name) and getattr(config, name) < limit:
            setattr(config, name, limit)
    if hasattr(config, "accumulated_recompile_limit"):
        config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, 4 * limit)
