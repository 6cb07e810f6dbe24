"""Tensor-parallel plan transforms on BERT: one pass vs the `eqx.tree_at` references.

Plan size is the number of modules the plan replaces: `bert_tp_plan` matches 6 Linears per
layer, so 24, 72 and 144 are BERT-4L, -12L and -24L (the real tree structures, tiny widths:
transform cost depends on the structure, not on the widths).
"""

import trainfast.eqx as tfe
from trainfast.eqx.workloads import bert_tp_workload

from .common import interleaved_ratio


PLAN_SIZES = [24, 72, 144]
METHODS = ["one_pass", "tree_at", "sequential"]


def _workload(plan_size: int):
    return bert_tp_workload(plan_size // 6)


def _method(name: str):
    return {
        "one_pass": tfe.apply_transforms,
        "tree_at": tfe.apply_transforms_tree_at,
        "sequential": tfe.apply_transforms_sequential,
    }[name]


class ApplyTransforms:
    """Seconds per `apply_transforms(model, plan)` call, by plan size and implementation.

    `one_pass` is `trainfast.eqx.apply_transforms`; `tree_at` batches one `eqx.tree_at` per
    nesting depth; `sequential` is one `eqx.tree_at` per match (O(matches x leaves)).
    """

    params = [PLAN_SIZES, METHODS]
    param_names = ["plan_size", "method"]
    version = "1"
    timeout = 300

    def setup(self, plan_size, method):
        self.workload = _workload(plan_size)
        self.fn = _method(method)
        self.fn(self.workload.model, self.workload.plan)  # warm caches (fnmatch, field lists)

    def time_apply(self, plan_size, method):
        self.fn(self.workload.model, self.workload.plan)


class TransformSpeedup:
    """How many times faster the one-pass `apply_transforms` is than a reference.

    Both are timed in alternating rounds by perfsuite's engine (median of the paired
    per-round ratios), so the ratio is steadier than that of two separately recorded times.
    """

    params = [PLAN_SIZES, ["sequential", "tree_at"]]
    param_names = ["plan_size", "reference"]
    version = "2"
    timeout = 300
    unit = "x"

    def setup(self, plan_size, reference):
        self.workload = _workload(plan_size)
        self.reference = _method(reference)
        self.one_pass = _method("one_pass")

    def track_speedup(self, plan_size, reference):
        model, plan = self.workload.model, self.workload.plan
        return interleaved_ratio(
            lambda: self.reference(model, plan), lambda: self.one_pass(model, plan)
        )
