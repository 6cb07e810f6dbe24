"""One model of a results document (`iter_series`) that every reader uses."""

from __future__ import annotations

import copy

import pytest

from perfsuite import _asv_export, _report
from perfsuite._memory_gate import memory_readings
from perfsuite._plots import write_plots
from perfsuite._results import MEMORY_SUFFIX, iter_series, run_statistics, series, validate_document


EVERY_KIND = """
import pytest

def work(n):
    return lambda: sum(range(n))

@pytest.mark.perf
def test_all(perf):
    perf.measure(work(2_000), name="alone", per=2_000, unit="item")
    cmp = perf.compare(small=work(1_000), large=work(8_000))
    cmp.assert_speedup("small", over="large", at_least=2)
    perf.steps(lambda s, b: s + b, 0, [1, 2], n=6, name="adder")
    # A wide band: this test is about the document, not the verdict (which could be
    # inconclusive on a loaded machine).
    perf.assert_scaling(
        lambda n: work(n * 1_000), [1, 2, 4], law="linear", name="loop", tolerance=2.0
    )
    # First calls (each sample a callable built afresh), read like any scaling check.
    perf.assert_scaling(
        lambda n: work(n * 1_000), [1, 2, 4], law="linear", name="first", tolerance=2.0,
        metric="first_call",
    )
    perf.record("speedup", 3.5, "x")
    perf.memory(lambda: bytearray(32 * 2**20), name="buffer")
    perf.counts(work(100), name="counted")
"""


@pytest.fixture
def document(run_perf, pytester):
    pytester.makepyfile(test_inner=EVERY_KIND)
    result, doc = run_perf()
    result.assert_outcomes(passed=1)
    return doc


TIMED = {
    "test_inner.py::test_all::alone",
    "test_inner.py::test_all::small",
    "test_inner.py::test_all::large",
    "test_inner.py::test_all::adder",
}


def test_every_reader_sees_the_same_series(document, tmp_path):
    validate_document(document)
    all_series = list(iter_series(document))
    # Every timed series is followed by its candidate's counts (the exact tier) and its
    # memory (host RSS exists on Linux); `perf.memory` and `perf.counts` are one more each.
    assert [s.kind for s in all_series] == [
        "measure",
        "counts",
        "memory",
        "compare",
        "counts",
        "memory",
        "compare",
        "counts",
        "memory",
        "steps",
        "counts",
        "memory",
        "scaling",
        "scaling",
        "record",
        "memory",
        "counts",
    ]
    memory = {s.id for s in all_series if s.kind == "memory"}
    assert memory == {sid + MEMORY_SUFFIX for sid in TIMED} | {"test_inner.py::test_all::buffer"}
    assert all(s.unit == "bytes" and len(s.samples) == 1 for s in all_series if s.kind == "memory")
    counted = {s.id for s in all_series if s.kind == "counts"}
    assert counted == {f"{sid}::counts" for sid in TIMED} | {"test_inner.py::test_all::counted"}
    assert {s.id for s in all_series if s.timed} == TIMED
    assert set(series(document)) == TIMED
    assert set(run_statistics(document, None)) == TIMED
    assert set(memory_readings(document)) == memory
    asv = _asv_export.benchmarks_from(document)
    every = TIMED | {
        "test_inner.py::test_all::loop",
        "test_inner.py::test_all::first",
        "test_inner.py::test_all::speedup",
    }
    metrics = {
        m["name"]: m["scaling"]["metric"]
        for m in document["measurements"]
        if m["kind"] == "scaling"
    }
    assert (metrics["loop"], metrics["first"]) == ("steady", "first_call")
    tracks = {_asv_export.asv_name(f"{sid}::track_python_calls") for sid in counted}
    assert {_asv_export.asv_name(sid) for sid in every | memory} | tracks <= set(asv)
    assert {n for n in asv if "track_" not in n} == {
        _asv_export.asv_name(sid) for sid in every | memory
    }
    assert {asv[_asv_export.asv_name(sid)][0]["type"] for sid in memory} == {"memory"}
    assert {asv[_asv_export.asv_name(sid)][0]["unit"] for sid in memory} == {"bytes"}
    buffer = asv[_asv_export.asv_name("test_inner.py::test_all::buffer")][1]["result"][0]
    assert buffer >= 32 * 2**20  # bytearray(n) is zeroed: its pages are touched
    labels = [row[0] for row in _report.rows(document["measurements"])]
    assert TIMED <= set(labels)
    assert "test_inner.py::test_all::speedup" in labels
    assert "test_inner.py::test_all::buffer" in labels
    assert "test_inner.py::test_all::counted" in labels
    assert labels.count("  counts") == 4
    # The memory column: every timed row and `perf.memory`'s row carry a peak.
    column = _report.HEADER.index("memory")
    by_label = {row[0]: row for row in _report.rows(document["measurements"])}
    assert all(by_label[sid][column] for sid in TIMED | {"test_inner.py::test_all::buffer"})
    plots = write_plots(document, tmp_path, stem="r")
    assert set(plots) == {
        "test_inner.py::test_all::adder",
        "test_inner.py::test_all::loop",
        "test_inner.py::test_all::first",
    }
    # The machine-speed reference (the stored-baseline gate's): every timed series carries
    # the samples taken while its test ran, and the gate reads them through the same model.
    from perfsuite._baseline import session_values
    from perfsuite._reference import KERNEL

    timed = [s for s in all_series if s.timed]
    assert all(s.reference and s.reference_kernel == KERNEL for s in timed)
    assert all(s.cpu_share is not None and 0 <= s.cpu_share <= 1 for s in timed)
    numbers = session_values(document, "median")
    assert set(numbers) == TIMED
    assert all(n.reference is not None and n.kernel == KERNEL for n in numbers.values())


def test_a_kind_from_a_newer_perfsuite_passes_through_every_reader(document, tmp_path):
    doc = copy.deepcopy(document)
    doc["measurements"].append(
        {"kind": "energy", "id": "t::m", "test": "t", "name": "m", "joules": 1}
    )
    validate_document(doc)
    assert [s.kind for s in iter_series(doc)][-1] == "energy"
    assert set(series(doc)) == TIMED
    assert set(run_statistics(doc, None)) == TIMED
    assert _asv_export.asv_name("t::m") not in _asv_export.benchmarks_from(doc)
    assert any("energy" in row[-1] for row in _report.rows(doc["measurements"]))
    write_plots(doc, tmp_path, stem="r")


def test_profiles_are_read_through_the_one_model(run_perf, pytester, tmp_path):
    """Issue 16: profile paths ride in the comparison; every reader still sees the same
    series, and `iter_profiles` is how the report finds them."""
    from perfsuite._results import iter_profiles

    pytester.makepyfile(test_inner=EVERY_KIND)
    result, doc = run_perf("--perf-profile=all")
    result.assert_outcomes(passed=1)
    validate_document(doc)
    assert set(series(doc)) == TIMED
    assert set(run_statistics(doc, None)) == TIMED
    # Profiles add nothing to what asv sees: the same benchmarks as without them.
    bare = {**doc, "measurements": [dict(m) for m in doc["measurements"]]}
    for m in bare["measurements"]:
        m.pop("profiles", None)
    assert set(_asv_export.benchmarks_from(doc)) == set(_asv_export.benchmarks_from(bare))
    assert {_asv_export.asv_name(sid) for sid in TIMED} <= set(_asv_export.benchmarks_from(doc))
    write_plots(doc, tmp_path, stem="r")
    profiles = {p.measurement: p for p in iter_profiles(doc)}
    # `all`: the comparison's two sides with their diff, and `perf.measure` alone.
    assert set(profiles) == {
        "test_inner.py::test_all::small+large",
        "test_inner.py::test_all::alone",
    }
    alone = profiles["test_inner.py::test_all::alone"]
    assert (alone.a, alone.b) == ("alone", None)
    assert (pytester.path / alone.diffs["host"]).is_file()
    p = profiles["test_inner.py::test_all::small+large"]
    assert (p.a, p.b) == ("small", "large")
    assert (pytester.path / p.diffs["host"]).is_file()
    md = _report.markdown_report(doc)
    assert f"({p.diffs['host']})" in md
    assert p.top["host"][0] in md


BENCHMARK_FIXTURE = """
import pytest

def test_call(benchmark):
    benchmark(sum, range(500))
    benchmark.extra_info["n"] = 500

@pytest.mark.benchmark(group="g")
def test_pedantic(benchmark):
    benchmark.pedantic(sorted, setup=lambda: ((list(range(300, 0, -1)),), {}), rounds=5)
"""


def test_benchmark_fixture_measurements_reach_every_reader(run_perf, pytester, tmp_path):
    """Issue 13: perfsuite's `benchmark` fixture records `measure` measurements (with a
    `benchmark` entry): every reader sees them as the timed series `<test>::benchmark`."""
    pytester.makepyfile(test_inner=BENCHMARK_FIXTURE)
    result, doc = run_perf("-p", "no:benchmark")
    result.assert_outcomes(passed=2)
    validate_document(doc)
    ids = {"test_inner.py::test_call::benchmark", "test_inner.py::test_pedantic::benchmark"}
    assert {s.id for s in iter_series(doc) if s.timed} == ids
    assert {s.kind for s in iter_series(doc) if s.id in ids} == {"measure"}
    assert set(series(doc)) == ids
    assert set(run_statistics(doc, None)) == ids
    assert {_asv_export.asv_name(sid) for sid in ids} <= set(_asv_export.benchmarks_from(doc))
    assert ids <= {row[0] for row in _report.rows(doc["measurements"])}
    # Host RSS is a memory source for `benchmark(...)` (pedantic makes no extra call).
    assert set(memory_readings(doc)) == {"test_inner.py::test_call::benchmark" + MEMORY_SUFFIX}
    write_plots(doc, tmp_path, stem="r")
