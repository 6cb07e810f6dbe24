"""P1: one-pass `apply_transforms` against one `eqx.tree_at` per match (and one batched)."""

import pytest

from trainfast.eqx import apply_transforms, apply_transforms_sequential, apply_transforms_tree_at
from trainfast.eqx.workloads import bert_tp_workload


@pytest.mark.perf
@pytest.mark.parametrize(("num_layers", "at_least"), [(4, 30.0), (12, 100.0)])
def test_one_pass_speedup(perf, num_layers, at_least):
    w = bert_tp_workload(num_layers)  # tiny widths: cost is set by the tree, not the widths
    assert w.num_matches == 6 * num_layers
    cmp = perf.compare(
        one_pass=lambda: apply_transforms(w.model, w.plan),
        sequential=lambda: apply_transforms_sequential(w.model, w.plan),
        tree_at=lambda: apply_transforms_tree_at(w.model, w.plan),
    )
    cmp.assert_speedup("one_pass", over="sequential", at_least=at_least)
    over_tree_at = cmp.assert_speedup("one_pass", over="tree_at", at_least=1.0)
    perf.record(f"speedup_over_tree_at_{num_layers}L", over_tree_at.estimate, "x")
    m = perf.measure(
        lambda: apply_transforms(w.model, w.plan),
        name=f"apply_transforms_{num_layers}L",
        per=w.num_leaves,
        unit="leaf",
    )
    perf.record(f"apply_transforms_{num_layers}L_per_leaf", m.per_unit_s * 1e6, "us/leaf")


@pytest.mark.perf
def test_one_pass_is_linear_in_leaves(perf):
    workloads = {n: bert_tp_workload(n) for n in (2, 4, 8, 16, 24)}

    def make(n):
        w = workloads[n]
        return lambda: apply_transforms(w.model, w.plan)

    perf.assert_scaling(
        make,
        sizes=list(workloads),
        law="linear",
        per=lambda n: workloads[n].num_leaves,
        unit="leaf",
        name="apply_transforms_vs_leaves",
    )
