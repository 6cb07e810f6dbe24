"""Options and marker keywords: typed parsing and clear errors."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("--perf-budget=abc", "*--perf-budget*Could not parse value: 'abc'*e.g. '20'*"),
        ("--perf-budget=-3", "*--perf-budget*Could not parse value: '-3'*"),
        ("--perf-budget=inf", "*--perf-budget*Could not parse value: 'inf'*"),
        (
            "--perf-fail=five",
            "*--perf-fail*Could not parse value: 'five'*e.g. '5%' or 'median:5%'*",
        ),
        ("--perf-fail=p99:5%", "*--perf-fail*Could not parse value: 'p99:5%'*"),
        ("--perf-save=a/b", "*--perf-save*Could not parse value: 'a/b'*e.g. 'main'*"),
        ("--perf-json=", "*--perf-json*Could not parse value: ''*"),
    ],
)
def test_bad_option_values_name_the_option_and_a_good_value(pytester, arg, expected):
    result = pytester.runpytest("--perf", arg)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--perf-save=main"], "*--perf-save only make sense with --perf*"),
        (["--perf-json=x.json"], "*--perf-json only make sense with --perf*"),
        (["--perf", "--perf-fail=5%"], "*--perf-fail needs a baseline*--perf-compare*"),
        (
            ["--perf", "--perf-compare=x.json", "--perf-fail-inconclusive"],
            "*--perf-fail-inconclusive needs a limit*--perf-fail=EXPR*",
        ),
        (["--perf-fail-inconclusive"], "*--perf-fail-inconclusive only make sense with --perf*"),
    ],
)
def test_option_conflicts_are_usage_errors(pytester, args, expected):
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        (
            "perf(budjet=1, roundz=3)",
            "*unknown keyword argument(s) ?'budjet', 'roundz'?; known:*budget*",
        ),
        ("perf(5)", "*keyword arguments only*"),
        ("perf(budget=-1)", "*`budget` must be a positive number of seconds, got -1*"),
        ("perf(rounds=1.5)", "*`rounds` must be an integer >= 2, got 1.5*"),
        ("perf(instrument='gpu')", "*`instrument` must be one of*jax*got 'gpu'*"),
    ],
)
def test_bad_marker_keywords_are_errors_listing_them(run_perf, pytester, marker, expected):
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_x(perf):
            perf.record("x", 1.0, "x")
        """
    )
    result, _ = run_perf()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([expected])


def test_marker_budget_and_rounds_reach_the_engine(run_perf, pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.perf(budget=3.5, rounds=12, instrument="host")
        def test_x(perf):
            assert perf.settings.budget_s == 3.5
            assert perf.settings.min_rounds == 12
            assert perf.settings.instrument == "host"
            m = perf.measure(lambda: 1, name="one")
            assert m.rounds >= 12
        """
    )
    result, _ = run_perf()
    result.assert_outcomes(passed=1)


def test_perf_budget_option_sets_the_budget(run_perf, pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.perf
        def test_x(perf):
            assert perf.settings.budget_s == 7.0
        """
    )
    result, _ = run_perf("--perf-budget=7")
    result.assert_outcomes(passed=1)


def test_help_says_how_baselines_hold_sessions(pytester):
    result = pytester.runpytest("--help")
    text = " ".join(result.stdout.str().split())
    assert "saving NAME again adds a session (the newest 20 are kept, older ones deleted)" in text
    assert "interrupted, failed-to-collect or empty session is never saved" in text
    assert "--perf-fail-inconclusive" in text
