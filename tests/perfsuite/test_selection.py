"""Which tests run with and without --perf, and the plugin's cost when it is off."""

from __future__ import annotations


PERF_AND_PLAIN = """
import pytest

@pytest.mark.perf
def test_fast(perf):
    perf.measure(lambda: sum(range(100)), name="sum")

def test_plain():
    pass
"""


def test_without_perf_perf_tests_are_skipped_naming_the_flag(pytester):
    pytester.makepyfile(PERF_AND_PLAIN)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*run with --perf*"])


def test_with_perf_only_perf_tests_run_and_others_are_deselected(run_perf, pytester):
    pytester.makepyfile(PERF_AND_PLAIN)
    result, doc = run_perf()
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*perf: 1 measured in 1 tests*"])
    assert [m["name"] for m in doc["measurements"]] == ["sum"]


def test_zero_measured_is_reported_not_silent(run_perf, pytester):
    pytester.makepyfile("def test_plain():\n    pass\n")
    result, doc = run_perf()
    result.stdout.fnmatch_lines(["*perf: 0 measured*"])
    assert doc["measurements"] == []


def test_fixture_in_unmarked_test_is_an_error(run_perf, pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.perf
        def test_marked(perf):
            pass

        def test_unmarked(perf):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1, errors=1)
    result.stdout.fnmatch_lines(["*not marked: add @pytest.mark.perf*"])


def test_plugin_off_imports_no_framework(pytester):
    # The plugin must not make ordinary test runs pay for JAX or PyTorch imports.
    pytester.makepyfile(
        """
        import sys

        def test_no_frameworks():
            assert "jax" not in sys.modules
            assert "torch" not in sys.modules
            assert "scipy" not in sys.modules  # the engine loads only under --perf
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_help_lists_the_perf_group(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*perfsuite: performance tests*",
            "*--perf *Run only tests marked `perf`*",
            "*--perf-budget=SECONDS*",
            "*--perf-quick*",
            "*--perf-json=PATH*",
            "*--perf-save=NAME*",
            "*--perf-compare=NAME|PATH*",
            "*--perf-fail=EXPR*",
            "*--perf-allow-cross-machine*",
        ]
    )
