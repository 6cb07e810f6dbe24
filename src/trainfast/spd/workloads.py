"""Workload builders shared by the perf tests, the asv suite and the command line (one copy, here)."""

from ._workloads import WORKLOADS as WORKLOADS
from ._workloads import Workload as Workload
from ._workloads import get_workload as get_workload
from ._workloads import resid_mlp_workload as resid_mlp_workload
from ._workloads import tms_workload as tms_workload
