"""Canaries for asynchronous execution: timings must be the work's cost, not dispatch's.

JAX dispatches asynchronously on every backend, CPU included: a jitted chain of large
matmuls returns in microseconds while the work takes milliseconds. A timer that does not wait
would report the microseconds. These tests pin the instrument's behaviour with a reference
that waits by hand.
"""

from __future__ import annotations

import contextlib
import time

import pytest

from perfsuite._engine import Engine
from perfsuite._errors import PerfUsageError
from perfsuite._settings import Settings


jax = pytest.importorskip("jax")
jnp = jax.numpy

SETTINGS = Settings(min_rounds=8, target_round_s=0.02, warmup_s=0.02, budget_s=5.0)


@pytest.fixture(scope="module")
def async_chain():
    @jax.jit
    def chain(x):
        for _ in range(8):
            x = jnp.tanh(x @ x / x.shape[0])
        return x

    # Big enough that the work dwarfs dispatch on the backend at hand (an H100 does the CPU
    # size in a fraction of a millisecond).
    n = 384 if jax.default_backend() == "cpu" else 8192
    x = jnp.ones((n, n), jnp.float32)
    chain(x).block_until_ready()
    return lambda: chain(x)


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def _interleaved(engine, cand, reference, pairs=9):
    """Engine rounds and hand-waited reference calls, alternated so load changes hit both."""
    measured, manual = [], []
    for _ in range(pairs):
        engine.run_rounds([cand], 1)
        measured.append(cand.samples[-1])
        manual.append(reference())
    return _median(measured), _median(manual)


def test_jax_dispatch_is_asynchronous_here(async_chain):
    # Precondition of the canary: if dispatch blocked, the canary would prove nothing.
    times = []
    for _ in range(9):
        start = time.perf_counter()
        out = async_chain()
        dispatch = time.perf_counter() - start
        out.block_until_ready()
        total = time.perf_counter() - start
        times.append((dispatch, total))
    # The fastest dispatch is its real cost; slower ones were preempted by other work.
    dispatch, total = min(d for d, _ in times), _median([t for _, t in times])
    assert dispatch < total / 3, (dispatch, total)


def test_jax_output_is_timed_at_the_work_cost(async_chain):
    engine = Engine(SETTINGS, contextlib.nullcontext)
    cand = engine.prepare("chain", async_chain, None)
    assert cand.instrument.name == "jax"

    def reference():
        start = time.perf_counter()
        async_chain().block_until_ready()
        return time.perf_counter() - start

    measured, work = _interleaved(engine, cand, reference)
    assert 0.5 * work <= measured <= 2.0 * work, (measured, work)


def test_first_call_is_kept_apart_with_its_compile_events():
    @jax.jit
    def fresh(x):
        return jnp.sin(x) @ jnp.cos(x).T

    x = jnp.ones((64, 64))
    engine = Engine(SETTINGS, contextlib.nullcontext)
    cand = engine.prepare("fresh", lambda: fresh(x), None)
    engine.run_rounds([cand], SETTINGS.min_rounds)
    assert cand.first_compile.compilations >= 1
    assert cand.first_compile.compile_s > 0
    assert cand.first_call_s > 3 * _median(cand.samples)
    assert cand.retraces == 0


def test_forced_host_clock_on_unready_jax_output_is_an_error(async_chain):
    engine = Engine(SETTINGS, contextlib.nullcontext)
    with pytest.raises(PerfUsageError, match="dispatch cost, not the work's"):
        engine.prepare("chain", async_chain, "host")


@pytest.fixture
def torch_one_thread():
    # Intra-op threads on a 2-core machine shared with other work make single calls swing
    # by 10x (a thread waits for a preempted sibling); one thread keeps the canary about
    # the instrument, not the scheduler.
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def test_torch_cpu_is_timed_by_the_host_clock_at_the_work_cost(torch_one_thread):
    torch = torch_one_thread
    a = torch.randn(256, 256)

    def chain():
        x = a
        for _ in range(8):
            x = torch.tanh(x @ x / 256)
        return x

    engine = Engine(SETTINGS, contextlib.nullcontext)
    cand = engine.prepare("torch", chain, None)
    assert cand.instrument.name == "host"  # CPU torch is synchronous: nothing to wait for

    def reference():
        start = time.perf_counter()
        chain()
        return time.perf_counter() - start

    measured, work = _interleaved(engine, cand, reference)
    assert 0.5 * work <= measured <= 2.0 * work, (measured, work)


@pytest.mark.skipif(
    not (pytest.importorskip("torch").cuda.is_available()),
    reason="needs a CUDA device (run on the GPU machine)",
)
@pytest.mark.parametrize("instrument", [None, "cuda-events"])
def test_torch_cuda_is_timed_at_the_work_cost(instrument):
    import torch

    a = torch.randn(4096, 4096, device="cuda")

    def chain():
        x = a
        for _ in range(8):
            x = torch.tanh(x @ x / 4096)
        return x

    chain()
    torch.cuda.synchronize()
    start = time.perf_counter()
    chain()
    dispatch = time.perf_counter() - start
    torch.cuda.synchronize()
    work = time.perf_counter() - start
    assert dispatch < work / 3, (dispatch, work)
    engine = Engine(SETTINGS, contextlib.nullcontext)
    cand = engine.prepare("cuda", chain, instrument)
    assert cand.instrument.name == (instrument or "torch-cuda")
    engine.run_rounds([cand], SETTINGS.min_rounds)
    reference = []
    for _ in range(7):
        torch.cuda.synchronize()
        start = time.perf_counter()
        chain()
        torch.cuda.synchronize()
        reference.append(time.perf_counter() - start)
    print(
        f"cuda canary [{cand.instrument.name}]: measured {_median(cand.samples) * 1e3:.3f} ms, "
        f"synced reference {_median(reference) * 1e3:.3f} ms, dispatch {dispatch * 1e3:.3f} ms"
    )
    assert 0.5 * _median(reference) <= _median(cand.samples) <= 2.0 * _median(reference)
