"""CPU perf: all exact flags together are no slower than the baseline on resid_mlp1.

The exact flags remove host work (hook registration, syncs, weight lookups, running Linears
whose output is replaced); on a CPU there is no GPU to overlap with, so the claim here is "no
slower" (5%), not a speedup. The GPU speedups are in the ablation table (`python -m
trainfast.spd --ablate --device cuda`). Both trainers come from `make_trainer`, the builder the
asv suite uses too; evaluation is off, as in every per-step timing.
"""

from __future__ import annotations

import pytest
import torch

from trainfast.spd import Flags, make_trainer


pytestmark = pytest.mark.perf


def _pair(batch_size: int):
    overrides = {"batch_size": batch_size}
    base = make_trainer("resid_mlp1", flags=Flags(), seed=0, overrides=overrides)
    exact = make_trainer("resid_mlp1", flags=Flags.exact(), seed=0, overrides=overrides)
    return base, exact


@pytest.fixture(scope="module")
def trainers():
    """resid_mlp1 at its config batch (2048)."""
    pair = _pair(2048)
    yield pair
    for t in pair:
        t.close()


# resid_mlp1's model, C and CI function with batch 256: at batch 2048 a CPU step is ~0.8 s of
# GEMMs on a loaded 2-core runner, the paired rounds cost 1.7 s each and the interval stayed
# inconclusive (0.999x [0.931, 1.1] after 33 rounds / 60 s) although the exact set removes
# only work (hooks, syncs, replaced Linears). At 256 the same claim gets ~10x more rounds.
@pytest.mark.perf(budget=40)
def test_exact_flags_no_slower_resid_mlp1(perf):
    base, exact = _pair(256)
    # Timed callables return the loss tensor so the instrument can wait for it.
    cmp = perf.compare(exact=exact.step, baseline=base.step)
    r = cmp.assert_no_slower("exact", than="baseline", tolerance=0.05)
    perf.record("exact_speedup_resid_mlp1", r.estimate, "x")


def test_per_step_times_resid_mlp1(perf, trainers):
    base, exact = trainers
    for name, trainer in (("baseline", base), ("exact", exact)):
        stats = perf.steps(
            lambda state, batch, t=trainer: t.step(), None, lambda i: None, n=8, name=name
        )
        assert stats.median_s > 0


needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (the GPU goals of the issue)"
)


# The goals on an H100: all optimizations >= 2.5x on resid_mlp1, >= 4x on resid_mlp3.
# Evaluation is off in both trainers (see make_trainer); warm-up (compile, the eager steps
# before graph capture, the capture) happens in perf's first call and warm-up rounds.
@needs_cuda
# Warnings are shown, not raised, here: Dynamo traces torch's own code, whose Deprecation/User
# warnings (torch.jit, TF32 advice) would otherwise abort compilation inside the timed
# callable (seen on the H100 as InternalTorchDynamoError).
@pytest.mark.filterwarnings("default")
@pytest.mark.perf(budget=120)
@pytest.mark.parametrize(("workload", "at_least"), [("resid_mlp1", 2.5), ("resid_mlp3", 4.0)])
def test_all_flags_speedup_cuda(perf, workload, at_least):
    base = make_trainer(workload, flags=Flags(), device="cuda")
    fast = make_trainer(workload, flags=Flags.fastest("cuda"), device="cuda")
    for _ in range(6):  # past the eager steps, compilation and the capture
        fast.step()
    cmp = perf.compare(all_on=fast.step, baseline=base.step)
    r = cmp.assert_speedup("all_on", over="baseline", at_least=at_least)
    perf.record(f"all_on_speedup_{workload}", r.estimate, "x")
