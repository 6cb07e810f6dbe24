"""Issue 13: a comparison still undecided after `--perf-progress` seconds says so."""

from __future__ import annotations

import re

import pytest

from perfsuite._progress import ProgressLines


#: Two copies of the same work asked to differ: undecided at the first looks (an A/A pair
#: has no speedup to find), so each assertion adds rounds until its budget is spent. Three
#: of them, in case one happens to decide at its first look (at 99% that is rare).
UNDECIDED = """
import pytest
from perfsuite import PerfError

def work():
    return sum(range(300))

@pytest.mark.perf(budget=0.4)
def test_undecided(perf):
    for i in range(3):
        cmp = perf.compare(**{f"a{i}": work, f"b{i}": work})
        try:
            cmp.assert_speedup(f"a{i}", over=f"b{i}", at_least=1.0)
        except PerfError:
            pass
"""

LINE = re.compile(
    r"perf: test_inner\.py::test_undecided: a\d vs b\d undecided after \d+ s, (\d+) rounds: "
    r"a\d [\d.]+x (faster|slower) than b\d \[[^\]]*\] \(99% CI\), [\d.]+ s of the 0\.4 s budget"
)


def test_an_undecided_comparison_says_so(run_perf, pytester):
    pytester.makepyfile(test_inner=UNDECIDED)
    result, _ = run_perf("--perf-progress=0.05")
    result.assert_outcomes(passed=1)
    lines = [m for m in map(LINE.search, result.stdout.lines) if m]
    assert lines, result.stdout.str()
    # Rounds so far: at least the first look's (--perf-quick: 8).
    assert all(int(m.group(1)) >= 8 for m in lines)


@pytest.mark.parametrize("args", [("-qq",), ("--perf-progress=off",)])
def test_no_progress_lines_with_qq_or_off(run_perf, pytester, args):
    pytester.makepyfile(test_inner=UNDECIDED)
    if args == ("-qq",):
        args = ("-qq", "--perf-progress=0.05")
    result, _ = run_perf(*args)
    assert result.ret == 0
    assert "undecided after" not in result.stdout.str()


def test_a_bad_progress_value_names_the_option(pytester):
    result = pytester.runpytest("--perf", "--perf-progress=soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--perf-progress" in result.stderr.str()
    assert "'off'" in result.stderr.str()


class _Cmp:
    spent_s = 1.25

    class _engine:  # noqa: N801 - stands in for the comparison's engine
        class settings:  # noqa: N801
            budget_s = 20.0


class _Ratio:
    a, b, rounds, level = "fast", "ref", 40, 0.99
    estimate, low, high = 0.5, 0.4, 0.8


def test_lines_wait_for_the_threshold_between_lines(monkeypatch):
    lines: list[str] = []
    progress = ProgressLines(lines.append, after_s=5.0)
    clock = iter([3.0, 6.0, 8.0, 11.5])
    monkeypatch.setattr("perfsuite._progress.time.monotonic", lambda: next(clock))
    hook = progress.for_comparison("t.py::test", started=0.0)
    for _ in range(4):
        hook(_Cmp(), _Ratio())
    # 3 s: too early; 6 s: first line; 8 s: only 2 s after it; 11.5 s: the second.
    assert len(lines) == 2
    assert lines[0] == (
        "perf: t.py::test: fast vs ref undecided after 6 s, 40 rounds: fast 2x slower than "
        "ref [1.25x, 2.5x] (99% CI), 1.2 s of the 20 s budget"
    )
    assert "after 12 s" in lines[1]


def test_parse_progress_after():
    import argparse

    from perfsuite._values import parse_progress_after

    assert parse_progress_after("off") is None
    assert parse_progress_after("2.5") == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive number of seconds"):
            parse_progress_after(bad)
