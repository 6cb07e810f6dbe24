"""`perfsuite calibrate`: the injected slowdown is real work, the command's sessions and clean-up."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from perfsuite._calibrate import SLOWDOWN_ENV, parse_slowdown, slowed
from perfsuite._errors import PerfUsageError
from perfsuite.calibrate import _gate
from perfsuite.calibrate._gate import CalibrationConfig
from perfsuite.cli import main


def _spin(seconds: float) -> None:
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


@pytest.mark.parametrize("bad", ["0.5", "abc", "nan", "inf", "-2"])
def test_a_bad_slowdown_is_named(bad):
    with pytest.raises(PerfUsageError, match=SLOWDOWN_ENV):
        parse_slowdown(bad)
    assert parse_slowdown("") is None
    assert parse_slowdown("1.25") == 1.25


def test_a_slowed_call_does_the_factor_of_its_own_work():
    # Measured in this thread's CPU time, so a loaded machine's preemption does not enter.
    fn = slowed(lambda: _spin(0.004), lambda out: None, 3.0, on_device=False)
    start = time.thread_time()
    fn()
    assert time.thread_time() - start == pytest.approx(3 * 0.004, rel=0.25)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("aa", 0, "--aa"),
        ("slowdowns", (2.0, 1.5), "increasing"),
        ("slowdowns", (1.0,), "> 1"),
        ("fail", "fast", "fast"),
        ("budget_s", 0.0, "--budget"),
    ],
)
def test_bad_configuration_is_named(field, value, match):
    with pytest.raises(PerfUsageError, match=match):
        CalibrationConfig(("t.py",), **{field: value})


INNER = """
import pytest


def work():
    s = 0
    for i in range(3000):
        s += i
    return s


@pytest.mark.perf
def test_work(perf):
    perf.measure(work, name="work")
"""


def test_the_engine_slows_every_timed_call_under_the_variable(pytester, monkeypatch):
    pytester.makepyfile(test_inner=INNER)
    per_call = {}
    for factor in ("", "4"):
        monkeypatch.setenv(SLOWDOWN_ENV, factor)
        out = pytester.path / f"r{factor or 1}.json"
        result = pytester.runpytest_subprocess("--perf", "--perf-quick", f"--perf-json={out}")
        result.assert_outcomes(passed=1)
        cand = json.loads(out.read_text())["measurements"][0]["candidate"]
        per_call[factor] = cand["per_call_s"]
        assert cand.get("injected_slowdown") == (4.0 if factor else None)
    # 4x the work per call; a loaded 2-core runner moves each session's reading a little.
    assert 2.5 < per_call["4"] / per_call[""] < 6


def test_calibrate_runs_sessions_and_removes_its_baseline(pytester, capsys, monkeypatch):
    pytester.makepyfile(test_inner=INNER)
    monkeypatch.chdir(pytester.path)
    monkeypatch.delenv(SLOWDOWN_ENV, raising=False)
    out = pytester.path / "cal.json"
    rc = main(
        ["calibrate", "--aa", "1", "--trials", "2", "--slowdowns", "4", "--json", str(out)]
        + ["--", "test_inner.py", "--perf-quick"]
    )
    assert rc == 0
    doc = json.loads(out.read_text())
    aa, x4 = doc["scenarios"]
    assert (aa["slowdown"], aa["sessions"], x4["slowdown"], x4["sessions"]) == (1.0, 1, 4.0, 2)
    assert aa["errors"] == x4["errors"] == 0
    # 4x with a 1-session baseline (default band x1.8): beyond the band, caught both times.
    assert x4["failed"] == 2
    assert doc["smallest_caught"] == 4.0
    printed = capsys.readouterr()
    assert "| 4x slower | 2/2 |" in printed.out
    assert "[calibrate] A/A 1/1" in printed.err
    # The throwaway baseline is gone and no results file was left in .perf.
    assert not list(Path(".perf").glob("*/*calibrate-*.json"))
    assert not list(Path(".perf").glob("results-*.json"))


def test_calibrate_needs_tests_or_builtin(capsys):
    assert main(["calibrate"]) == 2
    assert "--builtin" in capsys.readouterr().err
    assert _gate.CAUGHT == 0.8
