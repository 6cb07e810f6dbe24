"""`decompose`: one SPD run on a workload, then `evaluate_decomposition` of the result."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ._evaluate import ModuleDecomposition, evaluate_decomposition
from ._flags import Flags
from ._loop import Trainer
from ._workloads import Workload, get_workload


@dataclass
class Decomposition:
    """What `decompose` produced.

    Attributes:
        trainer: the finished `Trainer` (its `model` is the decomposition, `history` the
            per-iteration loss terms).
        modules: module path -> `ModuleDecomposition` on one-hot inputs.
        seconds: wall time of warm-up plus all iterations (evaluation off unless asked).
    """

    trainer: Trainer
    modules: dict[str, ModuleDecomposition]
    seconds: float

    def summary(self) -> str:
        """One line per module (see `ModuleDecomposition.summary`)."""
        return "\n".join(f"{p}: {m.summary()}" for p, m in self.modules.items())


def decompose(
    workload: str | Workload,
    steps: int,
    *,
    flags: Flags | Mapping[str, bool] | list[str] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    overrides: Mapping[str, Any] | None = None,
) -> Decomposition:
    """Run SPD for `steps` steps (after the faithfulness warm-up) and evaluate it.

    A workload name gets its **trained** target (`get_workload(name, target="trained")`,
    trained on `device` if it is neither shipped nor cached); pass a `Workload` to choose.
    Evaluation during training is off unless `overrides` sets `eval_freq`.

    Example:
        >>> d = decompose("tms_5-2", 2, overrides={"batch_size": 16})
        >>> sorted(d.modules)
        ['linear1', 'linear2']
    """
    if isinstance(workload, str):
        workload = get_workload(workload).trained(device=device)
    extra = {"eval_freq": None, **(overrides or {})}
    trainer = Trainer(workload, steps=steps, flags=flags, seed=seed, device=device, overrides=extra)
    start = time.perf_counter()
    trainer.faithfulness_warmup()
    for _ in range(steps + 1):
        trainer.step()
    trainer.close()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)
    seconds = time.perf_counter() - start
    modules = evaluate_decomposition(
        trainer.model,
        workload.n_features,
        threshold=trainer.cfg.ci_alive_threshold,
        sampling=trainer.cfg.sampling,
    )
    return Decomposition(trainer, modules, seconds)
