"""One model of a results document (`iter_series`) that every reader uses."""

from __future__ import annotations

import copy

import pytest

from perfsuite import _ab_runs, _asv_export, _report
from perfsuite._plots import write_plots
from perfsuite._results import iter_series, series, validate_document


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
    perf.record("speedup", 3.5, "x")
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
    # Every timed series is followed by its candidate's counts (the exact tier).
    assert [s.kind for s in all_series] == [
        "measure",
        "counts",
        "compare",
        "counts",
        "compare",
        "counts",
        "steps",
        "counts",
        "scaling",
        "record",
        "counts",
    ]
    counted = {s.id for s in all_series if s.kind == "counts"}
    assert counted == {f"{sid}::counts" for sid in TIMED} | {"test_inner.py::test_all::counted"}
    assert {s.id for s in all_series if s.timed} == TIMED
    assert set(series(document)) == TIMED
    assert set(_ab_runs.run_statistics(document, None)) == TIMED
    asv = _asv_export.benchmarks_from(document)
    every = TIMED | {"test_inner.py::test_all::loop", "test_inner.py::test_all::speedup"}
    tracks = {_asv_export.asv_name(f"{sid}::track_python_calls") for sid in counted}
    assert {_asv_export.asv_name(sid) for sid in every} | tracks <= set(asv)
    assert {n for n in asv if "track_" not in n} == {_asv_export.asv_name(sid) for sid in every}
    labels = [row[0] for row in _report.rows(document["measurements"])]
    assert TIMED <= set(labels)
    assert "test_inner.py::test_all::speedup" in labels
    assert "test_inner.py::test_all::counted" in labels
    assert labels.count("  counts") == 4
    plots = write_plots(document, tmp_path, stem="r")
    assert set(plots) == {"test_inner.py::test_all::adder", "test_inner.py::test_all::loop"}


def test_a_kind_from_a_newer_perfsuite_passes_through_every_reader(document, tmp_path):
    doc = copy.deepcopy(document)
    doc["measurements"].append(
        {"kind": "memory", "id": "t::m", "test": "t", "name": "m", "peak_bytes": 1}
    )
    validate_document(doc)
    assert [s.kind for s in iter_series(doc)][-1] == "memory"
    assert set(series(doc)) == TIMED
    assert set(_ab_runs.run_statistics(doc, None)) == TIMED
    assert _asv_export.asv_name("t::m") not in _asv_export.benchmarks_from(doc)
    assert any("memory" in row[-1] for row in _report.rows(doc["measurements"]))
    write_plots(doc, tmp_path, stem="r")
