"""The stored-baseline gate's pure judge (`perfsuite._baseline_judge`) and its store.

Pure and fast: numbers in, verdicts out (no pytest session, no files but the store's).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import time
from pathlib import Path

import pytest

from perfsuite import _reference
from perfsuite._baseline_judge import (
    DEFAULT_BAND,
    DEFAULT_BAND_NORMALISED,
    MIN_CPU_SHARE,
    SessionValue,
    judge,
    judge_series,
)
from perfsuite._baseline_store import BaselineStore, find_sessions
from perfsuite._errors import PerfUsageError
from perfsuite._stats import MIN_SESSIONS, shift_interval
from perfsuite._values import FailExpr


K = _reference.KERNEL


def v(value: float, ref: float | None = 1.0, share: float | None = 1.0, **kw) -> SessionValue:
    return SessionValue(value, ref, K if ref is not None else None, kw.pop("rounds", 10), share)


def test_a_machine_wide_shift_cancels_and_is_still_reported() -> None:
    # The whole session 1.6x slower, the reference timed with it 1.6x too: the machine.
    e = judge_series(v(1.6, ref=1.6), [v(1.0)], 1.05)
    assert e["normalised"]
    assert e["exponent"] == 1.0
    assert e["ratio"] == pytest.approx(1.0)
    assert e["verdict"] == "same"
    assert e["raw_ratio"] == pytest.approx(1.6)
    assert e["reference_ratio"] == pytest.approx(1.6)
    assert e["band"] == DEFAULT_BAND_NORMALISED


def test_a_slowdown_of_the_workload_alone_is_caught_where_the_raw_band_was_blind() -> None:
    # 1.6x slower, the machine unchanged. The raw rule's band (x1.8) cannot tell 1.6x from a
    # session's noise; the normalised band can (1.6 / 1.36 = 1.18 > 1.05).
    e = judge_series(v(1.6), [v(1.0)], 1.05)
    assert e["raw_verdict"] == "inconclusive"
    assert e["raw_band"] == DEFAULT_BAND
    assert e["verdict"] == "regression"
    assert e["low"] == pytest.approx(1.6 / DEFAULT_BAND_NORMALISED)


def test_the_default_normalised_band_splits_1x_and_2x_evenly_in_log() -> None:
    # The fail threshold (limit x band) sits at the geometric middle of 1x and 2x.
    assert math.log(1.05 * DEFAULT_BAND_NORMALISED) == pytest.approx(math.log(2) / 2, abs=0.02)
    assert judge_series(v(2.0), [v(1.0)], 1.05)["verdict"] == "regression"
    assert judge_series(v(1.3), [v(1.0)], 1.05)["verdict"] == "inconclusive"


def test_a_slowdown_that_slows_the_reference_too_is_inconclusive_never_same() -> None:
    # E.g. a slower interpreter: 2.5x raw, the reference 2.5x as well. Normalised it is 1x;
    # the raw ratio alone is a regression, so the verdict says so instead of "same".
    e = judge_series(v(2.5, ref=2.5), [v(1.0)], 1.05)
    assert e["ratio"] == pytest.approx(1.0)
    assert e["raw_verdict"] == "regression"
    assert e["verdict"] == "inconclusive"
    assert e["why"] == "reference"


def test_code_mostly_off_the_cpu_is_judged_raw() -> None:
    # A sleeping or device-bound series does not follow the CPU's speed: normalising it
    # would add the reference's noise. Below MIN_CPU_SHARE on either side: raw.
    low = MIN_CPU_SHARE / 2
    for current, baseline in [(v(1.6, share=low), [v(1.0)]), (v(1.6), [v(1.0, share=low)])]:
        e = judge_series(current, baseline, 1.05)
        assert not e["normalised"]
        assert e["band"] == DEFAULT_BAND
        assert e["ratio"] == pytest.approx(1.6)
        assert e["verdict"] == "inconclusive"


def test_a_partly_cpu_bound_series_takes_out_that_part_of_the_reference() -> None:
    e = judge_series(v(2.0, ref=1.5, share=0.8), [v(1.0, share=0.9)], 1.05)
    assert e["exponent"] == pytest.approx(0.8)
    assert e["ratio"] == pytest.approx(2.0 / 1.5**0.8)


@pytest.mark.parametrize(
    ("current", "baseline"),
    [
        (v(1.6, ref=None), [v(1.0)]),  # no reference this session
        (v(1.6), [v(1.0), v(1.0, ref=None)]),  # one baseline session without one
        (v(1.6), [SessionValue(1.0, 1.0, "another-kernel", 10, 1.0)]),
        (1.6, [1.0]),  # plain floats: raw times
    ],
)
def test_without_a_comparable_reference_on_both_sides_the_raw_rule_judges(
    current, baseline
) -> None:
    e = judge_series(current, baseline, 1.05)
    assert not e["normalised"]
    assert e["reference_ratio"] is None
    assert e["ratio"] == e["raw_ratio"] == pytest.approx(1.6)


def test_five_sessions_estimate_the_normalised_spread() -> None:
    base = [v(x, ref=x * 1.3) for x in (1.0, 1.5, 0.8, 1.2, 0.9)]  # raw varies, normalised not
    e = judge_series(v(1.1, ref=1.1 * 1.3), base, 1.05)
    assert e["band_estimated"]
    assert e["sessions"] == MIN_SESSIONS
    assert e["verdict"] == "same"
    assert e["ratio"] == pytest.approx(1.0)
    assert e["raw_band"] > e["band"]  # the raw numbers' spread is the wider


def test_judge_maps_series_with_the_fail_limit_and_skips_what_the_baseline_lacks() -> None:
    baseline = [{"a": v(1.0, rounds=8), "gone": v(1.0)}, {"a": v(1.0, rounds=12)}]
    current = {"a": v(1.12, rounds=20), "new": v(1.0)}
    out = judge(baseline, current, FailExpr("median", 0.10))
    assert list(out) == ["a"]
    assert out["a"]["limit"] == pytest.approx(1.10)
    assert out["a"]["verdict"] == "inconclusive"  # 1.12 > 1.10, within the band
    assert out["a"]["rounds"] == 20
    assert out["a"]["baseline_rounds"] == 10
    assert judge(baseline, current, None)["a"]["limit"] == pytest.approx(1.05)


def test_shift_interval_refuses_what_it_cannot_judge() -> None:
    with pytest.raises(ValueError, match="`baseline` must hold at least one"):
        shift_interval(1.0, [], default_band=1.5)
    with pytest.raises(ValueError, match="must be > 0"):
        shift_interval(0.0, [1.0], default_band=1.5)
    s = shift_interval(2.0, [1.0, 4.0, 1.0], default_band=1.5)
    assert s.centre == pytest.approx(1.0)
    assert (s.low, s.high) == pytest.approx((2 / 1.5, 3.0))


# --------------------------------------------------------------------------- the reference


def test_the_reference_allocates_nothing_the_collector_tracks() -> None:
    ref = _reference.Reference(min_gap_s=0.0)
    enabled = gc.isenabled()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for _ in range(50):
            ref.sample()
        after = gc.get_count()[0]
    finally:
        if enabled:
            gc.enable()
    assert after == before  # no collection brought into the workload's rounds
    assert len(ref.take()["samples_s"]) == 50


def test_samples_are_spaced_and_go_to_the_timed_measurements_of_the_test() -> None:
    ref = _reference.Reference(min_gap_s=60.0)
    ref.begin()
    for _ in range(5):
        ref.sample()  # one only: the others fall within the gap
    ms = [{"kind": "measure"}, {"kind": "record"}, {"kind": "compare"}]
    ref.attach(ms)
    assert ms[0]["reference"] is ms[2]["reference"]
    assert "reference" not in ms[1]
    entry = ms[0]["reference"]
    assert entry["kernel"] == _reference.KERNEL
    assert len(entry["samples_s"]) == 1
    assert entry["samples_s"][0] == pytest.approx(
        math.sqrt(entry["python_s"][0] * entry["numpy_s"][0])
    )
    assert 0.0 <= entry["cpu_share"] <= 1.0
    assert ref.take() is None


def test_cpu_share_tells_computing_from_sleeping() -> None:
    def share(work) -> float:
        start = _reference.thread_clock()
        work()
        return _reference.cpu_share_of(start, _reference.thread_clock())

    def spin() -> None:
        end = time.perf_counter() + 0.1
        while time.perf_counter() < end:
            pass

    # Wide margins: the run-queue wait is taken out, so load does not make spinning idle.
    assert share(spin) > 0.7
    assert share(lambda: time.sleep(0.1)) < 0.3


def test_a_sleeping_candidate_reads_idle_though_its_untimed_work_computes() -> None:
    # The defect CI caught: the test's share counted perfsuite's untimed work (warm-up,
    # memory and counts readings: CPU work whatever the callable does), and on a slower
    # machine a callable that sleeps read above `MIN_CPU_SHARE`, so its raw times were
    # divided by a CPU kernel's. The share the gate reads is the timed rounds' own.
    from perfsuite._engine import Engine
    from perfsuite._results import measurement_series
    from perfsuite._settings import Settings

    def spin(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    engine = Engine(Settings(budget_s=5.0, counts=False), contextlib.nullcontext)
    nap = engine.prepare("nap", lambda: time.sleep(0.001), None)
    spin(0.2)  # untimed CPU work between preparation and rounds, longer than the rounds
    engine.run_rounds([nap], 10)
    busy = engine.prepare("busy", lambda: spin(0.001), None)
    engine.run_rounds([busy], 10)
    assert nap.cpu.share is not None
    assert nap.cpu.share < 0.3
    assert busy.cpu.share is not None
    assert busy.cpu.share > 0.7
    # The series read the candidate's share, not the test's (which says the opposite here).
    m = {
        "kind": "measure",
        "test": "t.py::t",
        "name": "nap",
        "id": "t.py::t::nap",
        "candidate": nap.as_dict(),
        "reference": {"kernel": _reference.KERNEL, "samples_s": [1e-4], "cpu_share": 0.9},
    }
    [series] = [s for s in measurement_series(m) if s.kind == "measure"]
    assert series.cpu_share == pytest.approx(nap.cpu.share)
    del m["candidate"]["cpu_share"]  # a document from before the rounds' own share
    [old] = [s for s in measurement_series(m) if s.kind == "measure"]
    assert old.cpu_share == 0.9


# --------------------------------------------------------------------------- the store


def test_the_store_numbers_across_names_keeps_the_newest_and_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from perfsuite import _baseline_store

    monkeypatch.setattr(_baseline_store, "MAX_SESSIONS", 2)
    store = BaselineStore(tmp_path, "m1")
    doc = {"measurements": []}
    names = [store.save(n, doc).path.name for n in ("main", "pr", "main", "main")]
    assert names == ["0001_main.json", "0002_pr.json", "0003_main.json", "0004_main.json"]
    assert [p.name for p in store.sessions("main")] == ["0003_main.json", "0004_main.json"]
    assert store.newest("pr").name == "0002_pr.json"
    assert json.loads(store.newest("main").read_text()) == doc
    assert find_sessions(store.folder, "nothing") == []
    kw = {"cwd": tmp_path, "allow_cross_machine": False, "differences": lambda other: "cpu"}
    assert store.resolve("main", **kw) == store.sessions("main")
    assert store.resolve("x.json", **kw) == [tmp_path / "x.json"]
    with pytest.raises(PerfUsageError, match=r"--perf-compare=nope: no baseline named 'nope'"):
        store.resolve("nope", **kw)
    other = BaselineStore(tmp_path, "m2")
    with pytest.raises(PerfUsageError, match="saved on another machine"):
        other.resolve("pr", **{**kw, "differences": lambda other: "cpu differs"})
    assert [p.name for p in other.resolve("pr", **{**kw, "allow_cross_machine": True})] == [
        "0002_pr.json"
    ]
