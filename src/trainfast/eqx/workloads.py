"""Workload builders shared by the perf tests and the asv suite (one copy, here)."""

from ._workloads import TrainWorkload as TrainWorkload
from ._workloads import TransformWorkload as TransformWorkload
from ._workloads import bert_tp_workload as bert_tp_workload
from ._workloads import train_step_workload as train_step_workload
