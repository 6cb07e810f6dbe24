"""Nothing lost, nothing half-saved: bad input refused early, results never clobbered or lost."""

from __future__ import annotations

import json


def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


# --------------------------------------------------------------------------- names


DUPLICATES = """


def work():
    return sum(range(50))


@pytest.mark.perf
def test_same_name_twice(perf):
    perf.measure(work, name="sum")
    with pytest.raises(ValueError, match=r"`name` 'sum' is already used by another measurement"):
        perf.measure(work, name="sum")


@pytest.mark.perf
def test_measure_named_like_a_candidate(perf):
    perf.compare(a=work, b=work)
    with pytest.raises(ValueError, match=r"`name` 'a' is already used"):
        perf.measure(work, name="a")


@pytest.mark.perf
def test_candidate_named_like_a_measure(perf):
    perf.record("b", 1.0, "x")
    with pytest.raises(ValueError, match=r"`name` 'b' is already used"):
        perf.compare(a=work, b=work)


@pytest.mark.perf
def test_two_compares_sharing_a_candidate(perf):
    perf.compare(a=work, b=work)
    with pytest.raises(ValueError, match=r"`name` 'a' is already used"):
        perf.compare(a=work, c=work)


@pytest.mark.perf
def test_other_tests_may_reuse_a_name(perf):
    perf.measure(work, name="sum")
"""


def test_duplicate_names_in_one_test_are_refused(run_perf, pytester) -> None:
    pytester.makepyfile(test_dup=DUPLICATES)
    result, doc = run_perf()
    result.assert_outcomes(passed=5)
    ids = [m["id"] for m in doc["measurements"]]
    assert len(ids) == len(set(ids)), ids
    assert ids.count("test_dup.py::test_same_name_twice::sum") == 1


# --------------------------------------------------------------------------- bad arguments


BAD_ARGUMENTS = """
import math



@pytest.mark.perf
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_record_refuses_non_finite(perf, value):
    with pytest.raises(ValueError, match=r"`value` must be a finite number, got .* for 'x'"):
        perf.record("x", value, "x")
    perf.record("ok", 1.5, "x")


@pytest.mark.perf
def test_scaling_refuses_sizes_that_are_not_positive(perf):
    with pytest.raises(ValueError, match=r"`sizes` must be finite numbers > 0 .*\\[0, -1\\]"):
        perf.assert_scaling(lambda n: (lambda: None), [0, -1, 2, 4])


@pytest.mark.perf
def test_scaling_refuses_per_that_is_not_positive(perf):
    with pytest.raises(ValueError, match=r"`per` must give a finite number > 0 .*\\[0.0\\]"):
        perf.assert_scaling(lambda n: (lambda: None), [1, 2, 4], per=lambda n: n - 1)


@pytest.mark.perf
def test_steps_with_a_short_iterator(perf):
    with pytest.raises(
        ValueError, match=r"`batches` ran out after 4 batches; the steps need warmup \\+ n = 7"
    ):
        perf.steps(lambda s, b: s, 0, iter(range(4)), n=5, warmup=2)
"""


def test_bad_arguments_get_errors_naming_them(run_perf, pytester) -> None:
    pytester.makepyfile(test_bad=BAD_ARGUMENTS)
    result, _ = run_perf()
    result.assert_outcomes(passed=6)
    text = (pytester.path / "results.json").read_text()
    doc = _strict(text)  # no NaN or Infinity in the file
    assert {m["name"] for m in doc["measurements"]} == {"ok"}
