"""The plugin's own perf tests: small, real claims that exercise every part of the API.

They run with `make perf` on whatever backend the machine has, next to the trainfast
suites, and double as canaries: if the engine stopped waiting for asynchronous work or
stopped pairing rounds, these verdicts would change.
"""

from __future__ import annotations

import numpy as np
import pytest


jax = pytest.importorskip("jax")
jnp = jax.numpy


def _python_sum(values):
    total = 0.0
    for v in values:
        total += v
    return total


@pytest.mark.perf
def test_vectorised_sum_is_at_least_5x_faster_than_a_python_loop(perf):
    values = np.random.default_rng(0).random(20_000)
    as_list = values.tolist()
    cmp = perf.compare(numpy=lambda: values.sum(), python=lambda: _python_sum(as_list))
    r = cmp.assert_speedup("numpy", over="python", at_least=5)
    perf.record("numpy_over_python", r.estimate, "x")


@pytest.mark.perf
def test_python_loop_is_linear_in_its_length(perf):
    lists = {n: [1.0] * n for n in (2_000, 4_000, 8_000, 16_000, 32_000)}
    perf.assert_scaling(
        lambda n: lambda: _python_sum(lists[n]),
        sorted(lists),
        law="linear",
        per=lambda n: n,
        unit="item",
    )


@pytest.mark.perf
def test_jit_chain_is_timed_at_its_work_and_compiles_once(perf):
    n = 256 if jax.default_backend() == "cpu" else 4096

    @jax.jit
    def chain(x):
        for _ in range(8):
            x = jnp.tanh(x @ x / n)
        return x

    x = jnp.ones((n, n), jnp.float32)
    m = perf.measure(lambda: chain(x), name="chain", per=8, unit="matmul")
    assert m.candidate.instrument.name == "jax"
    assert m.candidate.first_compile.compilations >= 1
    assert m.candidate.retraces == 0


@pytest.mark.perf
def test_jitted_step_has_no_retraces(perf):
    @jax.jit
    def step(w, batch):
        x, y = batch
        grad = jax.grad(lambda w: jnp.mean((x @ w - y) ** 2))(w)
        return w - 0.1 * grad

    key = jax.random.PRNGKey(0)
    batches = [
        (jax.random.normal(jax.random.fold_in(key, i), (64, 32)), jnp.zeros((64, 1)))
        for i in range(4)
    ]
    stats = perf.steps(
        step, jnp.zeros((32, 1)), batches, n=30, max_retraces=0, name="linear_regression"
    )
    assert stats.retraces == 0
