"""The stored-baseline gate judges sessions, not rounds (issue 12, section 2 and 3).

Unit tests build baseline and current documents by hand and call `_baseline.apply`; plugin
tests go through pytester with a sleep-bound workload, whose time hardly depends on the
machine's mood, so that a chosen slowdown reads the same in every process.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from perfsuite import _baseline, _baseline_store
from perfsuite._options import FailExpr


# --------------------------------------------------------------------------- unit level


def _doc(samples: dict[str, list[float]]) -> dict:
    return {
        "measurements": [
            {
                "kind": "measure",
                "id": f"t::{name}",
                "test": "t",
                "name": name,
                "candidate": {"samples_s": s},
            }
            for name, s in samples.items()
        ]
    }


def _session(
    current: dict[str, list[float]],
    sessions: list[dict[str, list[float]]],
    fail: str | None = "median:5%",
    fail_inconclusive: bool = False,
) -> SimpleNamespace:
    expr = None
    if fail is not None:
        stat, pct = fail.split(":")
        expr = FailExpr(stat, float(pct.rstrip("%")) / 100)
    saved = [
        _baseline.SavedSession.of(
            Path(f"{i + 1:04d}_b.json"), _doc(s), expr.stat if expr else "median"
        )
        for i, s in enumerate(sessions)
    ]
    return SimpleNamespace(
        baseline_sessions=saved,
        document=_doc(current),
        perf_config=SimpleNamespace(compare="b", fail=expr, fail_inconclusive=fail_inconclusive),
        errors=[],
        measurements=[],
    )


def _entry(session: SimpleNamespace, name: str = "m") -> dict:
    [m] = [m for m in session.document["measurements"] if m["name"] == name]
    return m["baseline"]


def _tight(centre: float, n: int = 40) -> list[float]:
    """Rounds of one process: spread of 0.1% around `centre`."""
    return [centre * (1 + 0.001 * ((i % 5) - 2)) for i in range(n)]


def test_a_whole_process_shift_within_the_band_is_not_a_regression() -> None:
    # The reported false alarm: identical code, the second process 1.3x slower for its whole
    # life. Each side's rounds are tight, so a rounds-based interval excludes 1.05 easily;
    # across sessions, 1.3x is within what one unestimated session may differ by.
    session = _session({"m": _tight(1.3)}, [{"m": _tight(1.0)}], fail="median:5%")
    _baseline.apply(session)
    entry = _entry(session)
    assert entry["ratio"] == pytest.approx(1.3, rel=1e-3)
    assert entry["verdict"] == "inconclusive"
    assert entry["band"] == _baseline.DEFAULT_BAND
    assert not entry["band_estimated"]
    assert session.errors == []


def test_a_2x_slowdown_against_one_session_is_a_regression() -> None:
    session = _session({"m": _tight(2.0)}, [{"m": _tight(1.0)}], fail="median:5%")
    _baseline.apply(session)
    entry = _entry(session)
    assert entry["verdict"] == "regression"
    assert entry["low"] == pytest.approx(2.0 / _baseline.DEFAULT_BAND, rel=1e-3)
    [message] = session.errors
    assert "median per session 2x the baseline's" in message
    assert "default band x1.8: only 1 baseline session" in message
    assert "40 rounds this session, 40 per baseline session" in message
    assert "--perf-fail=median:5% fails when the lower bound > 1.05x" in message
    assert "cannot see smaller effects: use `perfsuite ab`" in message


def test_with_five_sessions_the_band_comes_from_their_spread() -> None:
    values = [1.0, 1.03, 0.98, 1.01, 0.99]
    sessions = [{"m": _tight(v)} for v in values]
    session = _session({"m": _tight(1.5)}, sessions, fail="median:5%")
    _baseline.apply(session)
    entry = _entry(session)
    assert entry["band_estimated"]
    assert entry["sessions"] == 5
    # These five vary by ~2%, less than the floor: the band is the floor's, narrower than
    # the default band, so 1.5x (within the default band) is now a regression.
    assert entry["spread"] == _baseline.SPREAD_FLOOR
    assert entry["band"] < 1.4 < _baseline.DEFAULT_BAND
    assert entry["verdict"] == "regression"
    assert "estimated from the spread of 5 baseline sessions" in session.errors[0]


def test_an_unusual_baseline_session_widens_the_band_but_does_not_move_the_centre() -> None:
    quiet = _baseline.Band.of([1.0, 1.01, 0.99, 1.0, 1.02])
    noisy = _baseline.Band.of([1.0, 1.01, 0.99, 1.0, 1.6])
    assert noisy.factor > quiet.factor * 1.5
    session = _session({"m": _tight(1.0)}, [{"m": _tight(v)} for v in (1.0, 1.01, 0.99, 1.0, 1.6)])
    _baseline.apply(session)
    assert _entry(session)["baseline_s"] == pytest.approx(1.0, rel=2e-3)


def test_the_estimated_spread_has_a_floor() -> None:
    band = _baseline.Band.of([1.0] * 6)
    assert band.spread == _baseline.SPREAD_FLOOR
    assert band.factor > 1.05


def test_a_point_within_the_limit_is_same_and_a_clear_speedup_an_improvement() -> None:
    session = _session(
        {"m": _tight(1.02), "f": _tight(0.4)}, [{"m": _tight(1.0), "f": _tight(1.0)}]
    )
    _baseline.apply(session)
    assert _entry(session, "m")["verdict"] == "same"
    assert _entry(session, "f")["verdict"] == "improvement"


def _min_vs_median() -> tuple[list[float], list[float], list[float]]:
    """Baseline rounds, and two current sessions: one whose min regressed (median did not),
    one whose median regressed (min did not)."""
    base = [1.0] + [2.0] * 19  # min 1, median 2
    min_regressed = [2.0] * 20  # min 2x, median 1x
    median_regressed = [1.0] + [5.0] * 19  # min 1x, median 2.5x
    return base, min_regressed, median_regressed


@pytest.mark.parametrize(
    ("current", "stat", "verdict"),
    [
        (1, "min", "regression"),
        (1, "median", "same"),
        (2, "min", "same"),
        (2, "median", "regression"),
        (2, "mean", "regression"),
    ],
)
def test_perf_fail_judges_the_statistic_it_names(current: int, stat: str, verdict: str) -> None:
    samples = _min_vs_median()
    session = _session({"m": samples[current]}, [{"m": samples[0]}], fail=f"{stat}:5%")
    _baseline.apply(session)
    entry = _entry(session)
    assert entry["statistic"] == stat
    assert entry["verdict"] == verdict
    assert bool(session.errors) == (verdict == "regression")
    if session.errors:
        assert f"{stat} per session {entry['ratio']:.3g}x the baseline's" in session.errors[0]
        assert entry["ratio"] > 1.9
        assert f"--perf-fail={stat}:5%" in session.errors[0]


def test_inconclusive_fails_only_with_perf_fail_inconclusive() -> None:
    for flag in (False, True):
        session = _session({"m": _tight(1.4)}, [{"m": _tight(1.0)}], fail_inconclusive=flag)
        _baseline.apply(session)
        assert _entry(session)["verdict"] == "inconclusive"
        assert session.document["baseline"]["inconclusive"] == ["t::m"]
        assert len(session.errors) == int(flag)
    assert session.errors[0].startswith("INCONCLUSIVE t::m: median per session 1.4x")


def test_the_summary_counts_compared_missing_and_new_series() -> None:
    session = _session({"m": _tight(1.0), "new": _tight(1.0)}, [{"m": _tight(1.0), "gone": [1.0]}])
    _baseline.apply(session)
    b = session.document["baseline"]
    assert b["compared"] == 1
    assert b["only_in_baseline"] == ["t::gone"]
    assert b["only_in_current"] == ["t::new"]
    assert b["verdicts"] == {"regression": 0, "inconclusive": 0, "same": 1, "improvement": 0}
    session.save_note = None
    lines = [text for text, _ in _baseline.summary_lines(session)]
    assert lines[0].startswith("perf: compared 1 series with baseline b (1 session, default band")
    assert "perf: 1 series of baseline b were not measured in this run: t::gone" in lines
    assert "perf: 1 series are new (not in baseline b): t::new" in lines


def test_t_quantiles_round_the_degrees_of_freedom_down() -> None:
    assert _baseline._t995(4) == pytest.approx(4.6041)
    assert _baseline._t995(22) == _baseline._t995(20)
    assert _baseline._t995(100) == pytest.approx(2.5758)
    assert math.isfinite(_baseline.Band.of([1.0, 1.1, 1.2, 1.05, 0.9] * 4).factor)


# --------------------------------------------------------------------------- through pytest


SLEEPER = """
import os
import time

import pytest

SLEEP = float(os.environ.get("GATE_SLEEP", "0.001"))


@pytest.mark.perf
def test_nap(perf):
    perf.measure(lambda: time.sleep(SLEEP), name="nap")


@pytest.mark.perf
def test_doze(perf):
    perf.measure(lambda: time.sleep(0.001), name="doze")
"""


@pytest.fixture
def sleeper(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    pytester.makepyfile(test_sleep=SLEEPER)

    def run(*args: str, sleep: float = 0.001, subprocess: bool = False) -> pytest.RunResult:
        monkeypatch.setenv("GATE_SLEEP", repr(sleep))
        # A KeyboardInterrupt of an inline run would stop the outer session too.
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        return runner("--perf", "--perf-quick", "-p", "no:cacheprovider", *args)

    return run


def _sessions(pytester: pytest.Pytester, name: str = "main") -> list[Path]:
    return sorted((pytester.path / ".perf").glob(f"*/[0-9]*_{name}.json"))


def test_saving_again_adds_a_session_and_says_what_and_where(
    pytester: pytest.Pytester, sleeper
) -> None:
    first = sleeper("--perf-save=main")
    first.stdout.fnmatch_lines(
        [
            "perf: saved baseline main: *0001_main.json (2 measurements, 2 timed series); "
            "main now holds 1 session; 4 more for the gate to estimate*"
        ]
    )
    second = sleeper("--perf-save=main")
    second.stdout.fnmatch_lines(
        [
            "perf: saved baseline main: *0002_main.json (2 measurements, 2 timed series); "
            "main now holds 2 sessions;*"
        ]  # fmt: skip
    )
    out = pytester.path / "cur.json"
    result = sleeper("--perf-compare=main", "--perf-fail=50%", f"--perf-json={out}")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["perf: compared 2 series with baseline main (2 sessions, default band x1.8*"]
    )
    b = json.loads(out.read_text())["baseline"]
    assert b["sessions"] == 2
    assert [Path(p).name for p in b["paths"]] == ["0001_main.json", "0002_main.json"]
    assert b["compared"] == 2


def test_sessions_beyond_the_cap_are_deleted_oldest_first(
    pytester: pytest.Pytester, sleeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_baseline_store, "MAX_SESSIONS", 2)
    for _ in range(3):
        result = sleeper("--perf-save=main", "-k", "doze")
    result.stdout.fnmatch_lines(["*main now holds 2 sessions (deleted 1 older beyond 2)*"])
    assert [p.name for p in _sessions(pytester)] == ["0002_main.json", "0003_main.json"]


def test_a_2x_slowdown_fails_and_unchanged_code_passes(pytester: pytest.Pytester, sleeper) -> None:
    sleeper("--perf-save=main").assert_outcomes(passed=2)
    same = sleeper("--perf-compare=main", "--perf-fail=5%")
    assert same.ret == 0, same.stdout.str()
    slow = sleeper("--perf-compare=main", "--perf-fail=5%", sleep=0.003)
    assert slow.ret == pytest.ExitCode.TESTS_FAILED
    slow.stdout.fnmatch_lines(
        ["perf: REGRESSION test_sleep.py::test_nap::nap: median per session*"]
    )
    assert "REGRESSION test_sleep.py::test_doze" not in slow.stdout.str()


def test_inconclusive_is_loud_at_the_end_and_in_the_json(
    pytester: pytest.Pytester, sleeper
) -> None:
    sleeper("--perf-save=main").assert_outcomes(passed=2)
    out = pytester.path / "cur.json"
    args = ("--perf-compare=main", "--perf-fail=5%", f"--perf-json={out}")
    result = sleeper(*args, sleep=0.0014)  # ~1.35x: beyond 5%, within the default band
    assert result.ret == 0
    # The unchanged `doze` may read a few percent off between two sessions too (then it is
    # inconclusive as well): only `nap`, slowed ~1.35x, must be.
    result.stdout.fnmatch_lines(
        [
            "perf: compared 2 series*inconclusive*",
            "perf: INCONCLUSIVE test_sleep.py::test_nap::nap: median per session 1.*x the "
            "baseline's*99% interval*default band x1.8*Rule: --perf-fail=median:5% fails when*",
        ]
    )
    assert "test_sleep.py::test_nap::nap" in json.loads(out.read_text())["baseline"]["inconclusive"]
    strict = sleeper(*args, "--perf-fail-inconclusive", sleep=0.0014)
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(
        ["*INCONCLUSIVE test_sleep.py::test_nap::nap*(--perf-fail-inconclusive)"]
    )


def test_perf_fail_min_is_judged_on_the_min(pytester: pytest.Pytester, sleeper) -> None:
    # A baseline whose fastest round was 5x faster than any round of today: its min
    # regressed 5x, its median did not move.
    sleeper("--perf-json=base.json").assert_outcomes(passed=2)
    doc = json.loads((pytester.path / "base.json").read_text())
    for m in doc["measurements"]:
        samples = m["candidate"]["samples_s"]
        samples[samples.index(min(samples))] /= 5
    (pytester.path / "base.json").write_text(json.dumps(doc))
    by_min = sleeper("--perf-compare=base.json", "--perf-fail=min:5%")
    assert by_min.ret == pytest.ExitCode.TESTS_FAILED
    by_min.stdout.fnmatch_lines(["*REGRESSION test_sleep.py::test_nap::nap: min per session*"])
    by_median = sleeper("--perf-compare=base.json", "--perf-fail=median:5%")
    assert by_median.ret == 0, by_median.stdout.str()


def test_a_compare_lists_baseline_series_missing_from_the_run(
    pytester: pytest.Pytester, sleeper
) -> None:
    sleeper("--perf-save=main").assert_outcomes(passed=2)
    out = pytester.path / "cur.json"
    result = sleeper("--perf-compare=main", "-k", "nap", f"--perf-json={out}")
    result.stdout.fnmatch_lines(
        [
            "perf: compared 1 series with baseline main*",
            "perf: 1 series of baseline main were not measured in this run: "
            "test_sleep.py::test_doze::doze",
        ]
    )
    b = json.loads(out.read_text())["baseline"]
    assert b["compared"] == 1
    assert b["only_in_baseline"] == ["test_sleep.py::test_doze::doze"]


def _refused(result: pytest.RunResult, reason: str) -> None:
    result.stdout.fnmatch_lines(
        [
            f"perf: NOT saved as baseline main: {reason}, so it would be a partial baseline; "
            "the existing baseline main (1 session, newest *0001_main.json) is untouched."
        ]  # fmt: skip
    )


def test_an_interrupted_session_is_never_saved(pytester: pytest.Pytester, sleeper) -> None:
    sleeper("--perf-save=main").assert_outcomes(passed=2)
    before = _sessions(pytester)[0].read_text()
    pytester.makepyfile(
        test_zstop="""
        import pytest

        @pytest.mark.perf
        def test_stop(perf):
            raise KeyboardInterrupt
        """
    )
    result = sleeper("--perf-save=main", subprocess=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    _refused(result, "the session was interrupted")
    assert [p.name for p in _sessions(pytester)] == ["0001_main.json"]
    assert _sessions(pytester)[0].read_text() == before


@pytest.mark.parametrize("keep_going", [False, True])
def test_a_session_with_collection_errors_is_never_saved(
    pytester: pytest.Pytester, sleeper, keep_going: bool
) -> None:
    sleeper("--perf-save=main").assert_outcomes(passed=2)
    pytester.makepyfile(test_broken="import nonexistent_module_xyz\n")
    args = ["--continue-on-collection-errors"] if keep_going else []
    result = sleeper("--perf-save=main", *args)
    _refused(result, "1 error during collection")
    assert [p.name for p in _sessions(pytester)] == ["0001_main.json"]


def test_a_session_that_stopped_early_is_never_saved(pytester: pytest.Pytester, sleeper) -> None:
    sleeper("--perf-save=main").assert_outcomes(passed=2)
    pytester.makepyfile(
        test_afail="""
        import pytest

        @pytest.mark.perf
        def test_fails(perf):
            assert False
        """
    )
    result = sleeper("--perf-save=main", "-x")
    _refused(result, "the session stopped early (stopping after 1 failures)")
    assert [p.name for p in _sessions(pytester)] == ["0001_main.json"]


@pytest.mark.parametrize("selection", [("-k", "nomatch"), ("--co",)])
def test_an_empty_session_is_never_saved(
    pytester: pytest.Pytester, sleeper, selection: tuple[str, ...]
) -> None:
    sleeper("--perf-save=main").assert_outcomes(passed=2)
    result = sleeper("--perf-save=main", *selection)
    _refused(result, "the session measured nothing (no timed series)")
    assert [p.name for p in _sessions(pytester)] == ["0001_main.json"]


def test_a_first_empty_session_says_there_is_still_no_baseline(
    pytester: pytest.Pytester, sleeper
) -> None:
    result = sleeper("--perf-save=main", "-k", "nomatch")
    result.stdout.fnmatch_lines(
        [
            "perf: NOT saved as baseline main: the session measured nothing*there is still no "
            "baseline main."
        ]  # fmt: skip
    )
    assert _sessions(pytester) == []


# --------------------------------------------------------------------------- the reference

CPU_WORK = """
import os

import pytest

N = int(os.environ.get("GATE_N", "20000"))


def loop(n):
    s = 0
    for i in range(n):
        s += i
    return s


@pytest.mark.perf
def test_loop(perf):
    perf.measure(lambda: loop(N), name="loop")
"""


def test_cpu_bound_series_are_judged_relative_to_the_reference_and_say_so(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_cpu=CPU_WORK)

    def run(n: int, *args: str) -> pytest.RunResult:
        monkeypatch.setenv("GATE_N", str(n))
        return pytester.runpytest("--perf", "--perf-quick", "-p", "no:cacheprovider", *args)

    run(20000, "--perf-save=main").assert_outcomes(passed=1)
    out = pytester.path / "cur.json"
    slow = run(40000, "--perf-compare=main", "--perf-fail=5%", f"--perf-json={out}")
    assert slow.ret == pytest.ExitCode.TESTS_FAILED
    [m] = json.loads(out.read_text())["measurements"]
    e = m["baseline"]
    assert m["reference"]["kernel"]
    assert m["candidate"]["cpu_share"] > _baseline.MIN_CPU_SHARE  # a loop computes
    assert e["normalised"]
    assert e["band"] == _baseline.DEFAULT_BAND_NORMALISED
    # The raw ratio and the reference's own are kept: `ratio` is their quotient.
    assert e["ratio"] == pytest.approx(e["raw_ratio"] / e["reference_ratio"] ** e["exponent"])
    assert e["verdict"] == "regression"
    slow.stdout.fnmatch_lines(
        [
            "*vs baseline main: *x the baseline's time [[]*]: regression (machine-normalised; "
            "raw *x, reference *x)",
            "*REGRESSION test_cpu.py::test_loop::loop: median per session relative to the "
            "machine-speed reference *the reference itself *",
        ]
    )


def test_a_sleeping_series_is_judged_raw(pytester: pytest.Pytester, sleeper) -> None:
    # time.sleep does not follow the CPU's speed: its CPU share is ~0, so the reference is
    # not taken out (it would add its own noise).
    sleeper("--perf-save=main").assert_outcomes(passed=2)
    out = pytester.path / "cur.json"
    sleeper("--perf-compare=main", f"--perf-json={out}").assert_outcomes(passed=2)
    doc = json.loads(out.read_text())
    # The share of the timed rounds (what the gate reads), not the test's: the test's
    # includes perfsuite's own untimed CPU work, and on CI's slower machine it read > 0.5.
    assert all(m["candidate"]["cpu_share"] < _baseline.MIN_CPU_SHARE for m in doc["measurements"])
    assert not any(m["baseline"]["normalised"] for m in doc["measurements"])
    assert doc["baseline"]["normalised"] == 0


def _with_reference(doc: dict, seconds: float, share: float = 1.0) -> dict:
    from perfsuite._reference import KERNEL

    for m in doc["measurements"]:
        m["reference"] = {"kernel": KERNEL, "samples_s": [seconds] * 20, "cpu_share": share}
    return doc


def test_a_slowdown_the_reference_shares_is_inconclusive_and_says_why() -> None:
    # Everything 2.5x slower, the reference too (a slower interpreter, a busier machine):
    # normalised it is 1x, but the raw ratio stays visible and the verdict is not "same".
    session = _session({"m": _tight(2.5)}, [{"m": _tight(1.0)}], fail="median:5%")
    _with_reference(session.document, 2.5e-4)
    session.baseline_sessions = [
        _baseline.SavedSession.of(
            Path("0001_b.json"), _with_reference(_doc({"m": _tight(1.0)}), 1e-4), "median"
        )
    ]
    _baseline.apply(session)
    e = _entry(session)
    assert e["normalised"]
    assert e["ratio"] == pytest.approx(1.0, rel=1e-3)
    assert e["raw_ratio"] == pytest.approx(2.5, rel=1e-3)
    assert e["verdict"] == "inconclusive"
    assert e["why"] == "reference"
    assert session.errors == []  # inconclusive fails only with --perf-fail-inconclusive
    session.save_note = None
    [line] = [t for t, _ in _baseline.summary_lines(session) if "INCONCLUSIVE" in t]
    assert "relative to the machine-speed reference 1x the baseline's (raw 2.5x" in line
    assert "the reference itself 2.5x" in line
    assert "the raw ratio alone is a regression" in line
