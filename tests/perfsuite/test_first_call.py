"""`perf.assert_scaling(metric="first_call")`: first calls of callables built afresh."""

import pytest


def test_first_call_times_each_fresh_callables_first_call(run_perf, pytester):
    # Only the first call of each callable is slow (10 ms per unit of n: a loaded
    # machine's few ms of oversleep do not bend the slope much); later calls
    # return at once. A first-call fit therefore sees time linear in n, which a fit of
    # warm calls could not (they are all instant).
    pytester.makepyfile(
        """
import time
import pytest

made = []

def make(n):
    made.append(n)
    state = {"first": True}
    def fn():
        if state["first"]:
            state["first"] = False
            time.sleep(0.010 * n)
    return fn

@pytest.mark.perf
def test_x(perf):
    fit = perf.assert_scaling(make, [1, 2, 4], law="linear", tolerance=0.35,
                              metric="first_call")
    # Every sample built its own callable: one `make(n)` per size per round.
    assert len(made) == 3 * fit.rounds
    assert fit.rounds >= 8
    assert fit.metric == "first_call"
    assert 0.010 <= fit.median_s[0] < fit.median_s[2]
"""
    )
    result, doc = run_perf()
    result.assert_outcomes(passed=1)
    (scaling,) = doc["measurements"]
    assert scaling["verdict"] == "pass"
    assert scaling["scaling"]["metric"] == "first_call"


def test_a_first_call_that_grows_fails_a_constant_claim(run_perf, pytester):
    pytester.makepyfile(
        """
import time
import pytest

def make(n):
    return lambda: time.sleep(0.003 * n)

@pytest.mark.perf
def test_x(perf):
    perf.assert_scaling(make, [1, 3, 9], law="constant", tolerance=0.25, metric="first_call")
"""
    )
    result, doc = run_perf()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*`assert_scaling`: first-call slope *`constant`*", "*n=9:*"])
    assert doc["measurements"][0]["verdict"] == "fail"


def test_a_first_call_that_compiles_nothing_is_a_usage_error(run_perf, pytester):
    # The same jitted function each time: from the second round on its call is cached,
    # so it is not a first call at all.
    pytester.makepyfile(
        """
import jax
import jax.numpy as jnp
import pytest

f = jax.jit(lambda x: x + 1)

@pytest.mark.perf
def test_x(perf):
    perf.assert_scaling(lambda n: (lambda: f(jnp.ones(n))), [1, 2, 4], law="constant",
                        metric="first_call")
"""
    )
    result, _ = run_perf()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*PerfUsageError*`metric='first_call'`*compiled nothing*"])


@pytest.mark.parametrize("metric", ["cold", "first-call", None])
def test_a_bad_metric_names_the_argument_and_the_choices(run_perf, pytester, metric):
    pytester.makepyfile(
        f"""
import pytest

@pytest.mark.perf
def test_x(perf):
    perf.assert_scaling(lambda n: (lambda: n), [1, 2, 3], law="constant", metric={metric!r})
"""
    )
    result, _ = run_perf()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        # `?` stands for the brackets (fnmatch reads `[...]` as a set of characters).
        [
            "*PerfUsageError*`metric` must be one of ?'steady', 'first_call', 'compile'?, "
            f"got {metric!r}*"
        ]
    )


def test_the_compile_metric_needs_a_compilation(run_perf, pytester):
    # A host callable compiles nothing: `metric="compile"` has nothing to time.
    pytester.makepyfile(
        """
import pytest

@pytest.mark.perf
def test_x(perf):
    perf.assert_scaling(lambda n: (lambda: n), [1, 2, 3], law="constant", metric="compile")
"""
    )
    result, _ = run_perf()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*PerfUsageError*`metric='compile'`*ran no XLA compilation*"])
