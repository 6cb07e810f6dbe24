"""Retraces after warm-up are counted and can be forbidden."""

from __future__ import annotations

import pytest


# Imported here, not only inside the inner runs: pytester's in-process runs drop modules
# first imported inside them, and JAX's extension cannot be initialised twice.
pytest.importorskip("jax")


def test_steps_counts_retraces_and_max_retraces_fails_with_them(run_perf, pytester):
    pytester.makepyfile(
        """
        import jax, jax.numpy as jnp
        import pytest

        @jax.jit
        def step(state, batch):
            return state + batch.sum()

        @pytest.mark.perf
        def test_stable(perf):
            batches = [jnp.ones(8)] * 3
            st = perf.steps(step, jnp.zeros(()), batches, n=6, max_retraces=0, name="stable")
            assert st.retraces == 0
            assert st.compile["compilations"] >= 1  # the first step compiled

        @pytest.mark.perf
        def test_shapes_change(perf):
            # A new batch length every step: each one is a new compilation.
            batches = lambda i: jnp.ones(8 + i)
            perf.steps(step, jnp.zeros(()), batches, n=4, max_retraces=0, name="changing")
        """
    )
    result, doc = run_perf()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*`steps` changing: mean *step (p50 *, p99 *, max *) over 4 steps, first step *, 4 retraces; required at most 0 retraces*"
        ]
    )
    by_name = {m["name"]: m for m in doc["measurements"]}
    assert by_name["stable"]["steps"]["retraces"] == 0
    assert by_name["changing"]["steps"]["retraces"] == 4


def test_retraces_in_a_comparison_are_reported(run_perf, pytester):
    pytester.makepyfile(
        """
        import itertools
        import jax, jax.numpy as jnp
        import pytest

        sizes = itertools.count(4)

        @jax.jit
        def f(x):
            return x * 2

        @pytest.mark.perf
        def test_x(perf):
            x = jnp.ones(4)
            cmp = perf.compare(stable=lambda: f(x), retracing=lambda: f(jnp.ones(next(sizes))))
            assert cmp.candidates["stable"].retraces == 0
            assert cmp.candidates["retracing"].retraces > 0
        """
    )
    result, doc = run_perf()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*  retracing *retraces*"])
