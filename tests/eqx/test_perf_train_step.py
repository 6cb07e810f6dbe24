"""P2: the train-step dispatchers on BERT-12L, batch 1x8, on this machine's default backend.

On the CPU the widths are tiny and dropout is off: threefry mask generation would dominate the
device time and hide the dispatch cost being measured (the pytree is the same either way). On
a GPU or TPU the model is BERT-base (768 wide, dropout 0.1): at tiny widths an accelerator
step is a few ms of kernel launches, about as long as `filter_jit`'s host work, so no
dispatcher could be 2x faster in the loop (H200: 1.94x [1.87, 1.99]) and the test would time
launch latency rather than what BERT training costs. On the CPU layers are scanned (the
pytree, and so the dispatch cost, is the same as unrolled, and each of the four compilations
takes seconds instead of tens of seconds); on an accelerator they are unrolled and the
optimizer update is fused (`flatten=True`), which is how BERT-base trains fastest there
(H200, 20-step loop: scanned 6.75 ms/step, unrolled 5.31, unrolled + fused 3.93).
"""

import jax
import pytest

from trainfast.eqx.bert import BertConfig
from trainfast.eqx.workloads import train_step_workload


DISPATCHES = ("cached", "filter_jit", "partition", "jit")


ON_CPU = jax.default_backend() == "cpu"
#: `cached` over `filter_jit`: per waited step, and in the 20-step loop. On an accelerator
#: BERT-base is unrolled and its update fused (`flatten=True`, one update kernel instead of
#: one per leaf), so the step is close to the device's floor and dispatch is what is left;
#: the targets are the issue's (H200 before: 1.95x and 2.19x with scanned layers; unrolled and
#: fused, 2026-12-02: 2.3x per waited step, fails; ~2.1x in the loop. The donated `jax.jit`
#: reference is itself only ~2.1x faster than `filter_jit` there: docs/train-step-h200.md).
STEP_SPEEDUP, LOOP_SPEEDUP = (1.3, 2.0) if ON_CPU else (2.5, 3.0)


def _workloads(batch: int, seq: int, dispatches=DISPATCHES) -> dict:
    config = None if ON_CPU else BertConfig()
    return {
        d: train_step_workload(d, 12, batch=batch, seq=seq, config=config, flatten=not ON_CPU)
        for d in dispatches
    }


@pytest.fixture(scope="module")
def workloads():
    # One workload (and so one compilation) per dispatcher, shared by the tests below.
    # Each call consumes the state the previous call returned: donated inputs are never
    # reused. "jit" is the hand-written partition + `jax.jit` with donation.
    return _workloads(1, 8)


@pytest.mark.perf
def test_cached_step_speedup(perf, workloads):
    cmp = perf.compare(
        cached=workloads["cached"], filter_jit=workloads["filter_jit"], jit=workloads["jit"]
    )
    cmp.assert_speedup("cached", over="filter_jit", at_least=STEP_SPEEDUP)
    cmp.assert_no_slower("cached", than="jit", tolerance=0.05)


@pytest.mark.perf
@pytest.mark.skipif(ON_CPU, reason="BERT-base 32x512 is an accelerator workload")
def test_cached_no_slower_than_jit_at_32x512(perf):
    w = _workloads(32, 512, ("cached", "jit"))
    cmp = perf.compare(cached=w["cached"], jit=w["jit"])
    cmp.assert_no_slower("cached", than="jit", tolerance=0.05)


@pytest.mark.perf(budget=60)
def test_back_to_back_loop_speedup(perf, workloads):
    # 20 steps dispatched back to back, waited for once at the end (by the instrument):
    # `filter_jit` blocks inside every call, `cached` lets host and device overlap. A
    # round is 20 steps, so rounds are few and the shared CI runner's noise wide: the
    # budget is larger than the default.
    cmp = perf.compare(
        cached=lambda: workloads["cached"].run(20),
        filter_jit=lambda: workloads["filter_jit"].run(20),
        jit=lambda: workloads["jit"].run(20),
    )
    cmp.assert_speedup("cached", over="filter_jit", at_least=LOOP_SPEEDUP)
    perf.record("loop20_cached_over_jit", cmp.ratio("cached", over="jit").estimate, "x")


@pytest.mark.perf
@pytest.mark.parametrize("dispatch", DISPATCHES)
def test_per_step_timings(perf, workloads, dispatch):
    w = workloads[dispatch]
    stats = perf.steps(w.step, w.state, w.batches, n=20, warmup=2, name=dispatch, max_retraces=0)
    w.state = stats.state  # the old state was donated
    assert stats.retraces == 0


@pytest.mark.perf
def test_cached_makes_a_tenth_of_filter_jits_host_calls(perf, workloads):
    # The exact tier (issue 15): host Python calls per step, counted, not timed: no noise,
    # the same on every machine for one toolchain. Read on the CPU VM: cached 468, filter_jit 11,277 (24x), the donated `jax.jit`
    # reference 2,761 (it partitions the model on every step; `cached` does not). A tenth
    # leaves a 2.4x margin for toolchain drift; nothing may compile in a warm step.
    no_compiles = {"compilations": 0, "traces": 0}
    counts = {
        d: perf.counts(w, name=d, at_most=no_compiles)
        for d, w in workloads.items()
        if d != "partition"
    }
    cached, filter_jit, jit = (counts[d]["python_calls"] for d in ("cached", "filter_jit", "jit"))
    assert 10 * cached <= filter_jit, (
        f"cached makes {cached:,} Python calls per step, filter_jit {filter_jit:,}: "
        f"{filter_jit / cached:.3g}x, required >= 10x"
    )
    # The hand-written jit reference is the floor the dispatchers are compared with:
    # `cached` must not do more host work than it.
    assert cached <= jit, f"cached {cached:,} Python calls per step > jit reference {jit:,}"
    # All three run the same program: the same XLA work per step.
    assert counts["cached"]["xla_flops"] == counts["jit"]["xla_flops"] > 0
    perf.record("filter_jit_over_cached_python_calls", filter_jit / cached, "x")
