"""The `perf` fixture's API and its failure messages, through pytester."""

from __future__ import annotations

import pytest


WORK = """
def work(n):
    def fn():
        s = 0
        for i in range(n):
            s += i
        return s
    return fn
"""


def test_compare_speedup_passes_and_records_both_candidates(run_perf, pytester):
    pytester.makepyfile(
        WORK
        + """
import pytest

@pytest.mark.perf
def test_x(perf):
    cmp = perf.compare(fast=work(2_000), slow=work(40_000))
    r = cmp.assert_speedup("fast", over="slow", at_least=5)
    assert r.low >= 5 and r.low <= r.estimate <= r.high
    assert cmp.rounds >= 8
"""
    )
    result, doc = run_perf()
    result.assert_outcomes(passed=1)
    (m,) = doc["measurements"]
    assert m["kind"] == "compare"
    names = [c["name"] for c in m["comparison"]["candidates"]]
    assert names == ["fast", "slow"]
    for cand in m["comparison"]["candidates"]:
        assert len(cand["samples_s"]) == cand["stats"]["rounds"] >= 8
        assert cand["first_call_s"] > 0
        assert cand["instrument"]["name"] == "host"
    (verdict,) = m["comparison"]["verdicts"]
    assert verdict["verdict"] == "pass"
    assert verdict["ratio"]["low"] >= 5
    result.stdout.fnmatch_lines(["*assert_speedup: fast *x faster than slow*pass*"])


def test_speedup_failure_message_carries_the_numbers(run_perf, pytester):
    pytester.makepyfile(
        WORK
        + """
import pytest

@pytest.mark.perf
def test_x(perf):
    cmp = perf.compare(fast=work(10_000), slow=work(20_000))
    cmp.assert_speedup("fast", over="slow", at_least=5)
"""
    )
    result, doc = run_perf()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*PerfFailure: `assert_speedup`: fast is *x as fast as slow (99% CI *x..*x over * rounds; "
            "mean per call * vs *); required speedup >= 5x (lower 99% bound).",
        ]
    )
    assert doc["measurements"][0]["comparison"]["verdicts"][0]["verdict"] == "fail"


def test_no_slower_fails_when_clearly_slower(run_perf, pytester):
    pytester.makepyfile(
        WORK
        + """
import pytest

@pytest.mark.perf
def test_x(perf):
    cmp = perf.compare(new=work(30_000), old=work(10_000))
    cmp.assert_no_slower("new", than="old", tolerance=0.10)
"""
    )
    result, _ = run_perf()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*`assert_no_slower`: new is 0.* as fast as old*required slowdown <= 1.1x*"]
    )


def test_undecided_claim_is_inconclusive_and_fails(run_perf, pytester):
    # Identical work against a threshold of exactly 1x: the interval straddles it forever.
    pytester.makepyfile(
        WORK
        + """
import pytest

@pytest.mark.perf(budget=0.3)
def test_x(perf):
    cmp = perf.compare(a=work(5_000), b=work(5_000))
    cmp.assert_speedup("a", over="b", at_least=1.0)
"""
    )
    result, doc = run_perf()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*PerfInconclusive*INCONCLUSIVE*budget 0.3 s spent*"])
    assert doc["measurements"][0]["comparison"]["verdicts"][0]["verdict"] == "inconclusive"


def test_measure_steps_scaling_record_land_in_the_results(run_perf, pytester):
    pytester.makepyfile(
        WORK
        + """
import pytest

@pytest.mark.perf
def test_x(perf):
    m = perf.measure(work(5_000), name="loop", per=5_000, unit="iter")
    assert m.per_unit_s == pytest.approx(m.per_call_s / 5_000)
    st = perf.steps(lambda state, b: state + b, 0, [1, 2], n=7, warmup=3, name="adder")
    # batches cycle 1, 2, 1 (first step + 2 warm-up) then 2, 1, 2, 1, 2, 1, 2 (timed),
    # then the last batch (2) again in each untimed step that counted a step's work
    assert len(st.times_s) == 7 and st.state == 15 + 2 * st.counted_steps
    fit = perf.assert_scaling(lambda n: work(n * 2_000), [1, 2, 4, 8], law="linear", per=lambda n: n * 2_000, unit="iter")
    assert fit.expected == pytest.approx(1.0)
    perf.record("speedup", 3.5, "x")
"""
    )
    result, doc = run_perf()
    result.assert_outcomes(passed=1)
    kinds = [m["kind"] for m in doc["measurements"]]
    assert kinds == ["measure", "steps", "scaling", "record"]
    measure, steps, scaling, record = doc["measurements"]
    assert measure["per"] == 5_000
    assert measure["unit"] == "iter"
    assert steps["steps"]["stats"]["rounds"] == 7
    assert steps["steps"]["warmup"] == 3
    assert scaling["verdict"] == "pass"
    assert len(scaling["scaling"]["per_unit_s"]) == 4
    assert record == {**record, "value": 3.5, "unit": "x"}
    result.stdout.fnmatch_lines(
        ["*  adder *steps/s*", "*scaling(linear): slope*pass*", "*  speedup *3.5 x*"]
    )


def test_scaling_detects_a_quadratic_claimed_linear(run_perf, pytester):
    pytester.makepyfile(
        """
import pytest

def quadratic(n):
    def fn():
        s = 0
        for i in range(n):
            for j in range(n):
                s += j
        return s
    return fn

@pytest.mark.perf
def test_x(perf):
    perf.assert_scaling(lambda n: quadratic(n), [40, 80, 160, 320], law="linear")
"""
    )
    result, doc = run_perf()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*`assert_scaling`: slope * `linear` over these sizes has slope 1.000*", "*n=320:*"]
    )
    assert doc["measurements"][0]["verdict"] == "fail"


def test_candidate_names_are_checked(run_perf, pytester):
    pytester.makepyfile(
        """
import pytest

@pytest.mark.perf
def test_x(perf):
    cmp = perf.compare(a=lambda: 1, b=lambda: 2)
    cmp.ratio("a", over="c")
"""
    )
    result, _ = run_perf()
    result.stdout.fnmatch_lines(
        [
            "*perfsuite.PerfUsageError: `over`='c' is not a candidate of this comparison; "
            "candidates: ?'a', 'b'?*"
        ]
    )


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("perf.compare(a=lambda: 1)", "*`compare` needs at least two named callables*"),
        ("perf.compare(a=1, b=lambda: 2)", "*`a` must be a callable taking no arguments, got 1*"),
        ("perf.measure(lambda: 1, name='x', per=0)", "*`per` must be > 0, got 0*"),
        ("perf.steps(lambda s, b: s, 0, [1], n=0)", "*`n` must be >= 1, got 0*"),
        (
            "perf.assert_scaling(lambda n: (lambda: n), [1, 2], law='linear')",
            "*needs at least 3 sizes*",
        ),
        (
            "perf.assert_scaling(lambda n: (lambda: n), [1, 2, 3], law='cubic')",
            "*`law` must be one of*got 'cubic'*",
        ),
        (
            "perf.compare(a=lambda: 1, b=lambda: 1).assert_speedup('a', over='b', at_least=0)",
            "*`at_least` must be > 0*",
        ),
        ("perf.record('x', 'fast', 'x')", "*`value` must be a number, got 'fast'*"),
    ],
)
def test_bad_arguments_name_the_argument_and_rule(run_perf, pytester, call, expected):
    pytester.makepyfile(
        f"""
import pytest

@pytest.mark.perf
def test_x(perf):
    {call}
"""
    )
    result, _ = run_perf()
    result.assert_outcomes(failed=1)
    # Misuse is one error type, shown by its public name, whatever the argument.
    result.stdout.fnmatch_lines(["*perfsuite.PerfUsageError: " + expected])
