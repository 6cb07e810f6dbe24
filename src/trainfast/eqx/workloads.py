"""Workload builders shared by the perf tests and the asv suite (one copy, here)."""

from ._workloads import (
    bert_tp_workload as bert_tp_workload,
    TrainWorkload as TrainWorkload,
    train_step_workload as train_step_workload,
    TransformWorkload as TransformWorkload,
)
