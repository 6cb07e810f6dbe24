"""The exact tier on the workloads (issue 15): counts that hold on every machine.

Host Python calls per call are counted (`perf.counts`), not timed, so these claims have no
noise: the same code on the same toolchain reads the same numbers on a loaded 2-core runner
and on an H200 host. The numbers quoted were read on the 2-core CPU VM (Python 3.11.7, JAX
0.10.2); they move with the toolchain (a JAX upgrade changes its dispatch code), so the
assertions are ratios and laws with margins, not the numbers themselves. P2's count claim
(`cached` against `filter_jit` on BERT-12L) is in test_perf_train_step.py, which holds the
compiled train steps.
"""

import pytest

from trainfast.eqx import apply_transforms, apply_transforms_sequential
from trainfast.eqx.workloads import bert_tp_workload


pytestmark = pytest.mark.perf


def _differences(values):
    return [b - a for a, b in zip(values, values[1:])]


def test_apply_transforms_calls_are_linear_in_leaves_tree_at_quadratic(perf):
    # Layers 2..10 in equal steps: leaves = 10 + 16 n, matches = 6 n. Read on the CPU VM:
    # apply_transforms 842, 1406, 1970, 2534, 3098 (exactly +564 per 2 layers: 17.6 calls
    # per leaf); one `tree_at` per match 26,864 ... 503,424 (second differences exactly
    # 37,056: 48 calls per match x leaf).
    sizes = (2, 4, 6, 8, 10)
    work = {n: bert_tp_workload(n) for n in sizes}
    one_pass, per_match = [], []
    for n in sizes:
        w = work[n]
        one_pass.append(
            perf.counts(lambda w=w: apply_transforms(w.model, w.plan), name=f"one_pass_{n}L")
        )
        per_match.append(
            perf.counts(
                lambda w=w: apply_transforms_sequential(w.model, w.plan), name=f"tree_at_{n}L"
            )
        )
    a = [c["python_calls"] for c in one_pass]
    s = [c["python_calls"] for c in per_match]
    leaves = [work[n].num_leaves for n in sizes]
    cross = [work[n].num_leaves * work[n].num_matches for n in sizes]
    # Linear, exactly: the same number of calls for every leaf added.
    per_leaf = [d / dl for d, dl in zip(_differences(a), _differences(leaves))]
    assert len(set(per_leaf)) == 1, f"apply_transforms calls per added leaf differ: {per_leaf}"
    # Quadratic, exactly: matches x leaves is quadratic in n, and so are the calls (the
    # third differences vanish, the second do not).
    second = _differences(_differences(s))
    assert len(set(second)) == 1, f"tree_at second differences: {second}"
    assert second[0] > 0, f"tree_at second differences: {second}"
    per_cross = second[0] / _differences(_differences(cross))[0]
    assert per_cross > per_leaf[0], (per_cross, per_leaf)
    perf.record("apply_transforms_python_calls_per_leaf", per_leaf[0], "calls/leaf")
    perf.record("tree_at_python_calls_per_match_leaf", per_cross, "calls/(match*leaf)")
