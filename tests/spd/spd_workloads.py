"""Tiny workloads for the SPD tests: upstream's structure at shapes a 2-core CI machine runs
in seconds. (A plain module, not the conftest: test dirs share the module name `conftest`.)"""

from __future__ import annotations

from trainfast.spd import Workload, resid_mlp_workload, tms_workload


TINY = {
    "batch_size": 32,
    "faithfulness_warmup_steps": 3,
    "train_log_freq": 2,
    "eval_freq": 3,
    "n_eval_steps": 2,
    "save_freq": 2,
}


def tiny_resid(**config: object) -> Workload:
    """Two-layer ResidMLP (4 decomposed Linears), d_embed 32, C 12."""
    return resid_mlp_workload(
        2, 20, 8, d_embed=32, name="resid_tiny", **{"C": 12, **TINY, **config}
    )


def tiny_tms(**config: object) -> Workload:
    """TMS 8-3 with tied components and the cosine schedule."""
    return tms_workload(8, 3, name="tms_tiny", **{"C": 10, **TINY, **config})
