"""`run`: the public entry point, one full training run with per-step timings."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ._flags import Flags
from ._loop import Trainer
from ._workloads import Workload


@dataclass
class RunResult:
    """What one `run` produced.

    Attributes:
        loss_terms: per iteration (`steps + 1` of them), loss term name -> value, plus
            `"total"` and the per-layer `"l0/<path>"`.
        state_dict: the final `ComponentModel.state_dict()`, on the CPU.
        step_times: wall seconds per iteration (synchronized on CUDA); iterations that evaluate
            or save include that work.
        flags: the flags used.
        eval_metrics: one dict per evaluation (with its `"step"`).
        checkpoints: paths of the saved checkpoints.
        warmup_losses: faithfulness warm-up losses (every 100 steps and the last).
    """

    loss_terms: list[dict[str, float]]
    state_dict: dict[str, Tensor]
    step_times: list[float]
    flags: Flags
    eval_metrics: list[dict[str, float]]
    checkpoints: list[Path]
    warmup_losses: list[float]


def run(
    workload: str | Workload,
    steps: int,
    *,
    flags: Flags | Mapping[str, bool] | list[str] | None = None,
    seed: int = 0,
    device: str = "cpu",
    out_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunResult:
    """Train SPD on a toy workload: faithfulness warm-up, then `steps + 1` iterations.

    Args:
        workload: `"tms_5-2"`, `"tms_40-10"`, `"resid_mlp1"`, `"resid_mlp2"`, `"resid_mlp3"`.
        steps: optimizer updates (the final iteration only logs, evaluates and saves).
        flags: optimizations to switch on (see `Flags`); `None` is the upstream baseline.
        seed: global seed (initialisation and masks); data has its own generators.
        device: `"cpu"` or `"cuda"`.
        out_dir: directory for `metrics.jsonl` and `model_{step}.pth`; `None` writes nothing.
        overrides: `SPDConfig` fields to replace, e.g. `{"batch_size": 64, "eval_freq": None}`.

    Returns:
        A `RunResult`.

    Raises:
        ValueError: unknown workload, flag or override, or a flag the device cannot run.

    Example:
        >>> r = run("tms_5-2", 2, overrides={"batch_size": 16, "faithfulness_warmup_steps": 1})
        >>> len(r.loss_terms)
        3
    """
    trainer = Trainer(
        workload,
        steps=steps,
        flags=flags,
        seed=seed,
        device=device,
        out_dir=out_dir,
        overrides=overrides,
    )
    cuda = trainer.device.type == "cuda"
    trainer.faithfulness_warmup()
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        trainer.step()
        if cuda:  # lazy modes return before the GPU is done; time the work, not the launch
            torch.cuda.synchronize(trainer.device)
        times.append(time.perf_counter() - t0)
    trainer.close()
    state = {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}
    return RunResult(
        loss_terms=trainer.history,
        state_dict=state,
        step_times=times,
        flags=trainer.flags,
        eval_metrics=trainer.eval_history,
        checkpoints=list(trainer.checkpointer.paths),
        warmup_losses=trainer.warmup_losses,
    )
