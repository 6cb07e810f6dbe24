"""Under pytest-xdist, timed sections never overlap and results are gathered."""

from __future__ import annotations

import pytest


pytest.importorskip("xdist")


def test_timed_sections_never_overlap_across_workers(run_perf, pytester):
    # Every timed call logs (worker, start, end); with a device lock, intervals of different
    # workers are disjoint. Four tests on two workers overlap without it.
    log = pytester.path / "calls.log"
    pytester.makepyfile(
        f"""
        import os, time
        import pytest

        def logged():
            start = time.perf_counter_ns()
            s = 0
            for i in range(20_000):
                s += i
            end = time.perf_counter_ns()
            with open({str(log)!r}, "a") as fh:
                fh.write(f"{{os.getpid()}} {{start}} {{end}}\\n")
            return s

        @pytest.mark.parametrize("i", range(4))
        @pytest.mark.perf
        def test_x(perf, i):
            perf.measure(logged, name=f"m{{i}}")
        """
    )
    result, doc = run_perf("-n", "2", subprocess=True)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["*perf: 4 measured in 4 tests*", "*2 xdist workers; timed sections were serialised*"]
    )
    # One document, written by the controller, with every worker's measurements.
    assert sorted(m["name"] for m in doc["measurements"]) == ["m0", "m1", "m2", "m3"]
    calls = [tuple(map(int, line.split())) for line in log.read_text().splitlines()]
    assert len({pid for pid, _, _ in calls}) == 2
    calls.sort(key=lambda c: c[1])
    for (pid1, _, end1), (pid2, start2, _) in zip(calls, calls[1:]):
        if pid1 != pid2:
            assert start2 >= end1, "timed calls of two workers overlapped"
