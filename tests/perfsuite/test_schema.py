"""One schema check on load, shared by every reader; strict JSON on write."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from perfsuite import ab as _ab
from perfsuite._options import FailExpr
from perfsuite._results import (
    SCHEMA,
    SCHEMA_VERSION,
    SchemaError,
    load_document,
    validate_document,
    write_json,
)
from perfsuite.ab import _runs as _ab_runs
from perfsuite.cli import main


def _cand(name: str = "f") -> dict:
    return {
        "name": name,
        "samples_s": [1e-3, 1.1e-3, 0.9e-3],
        "stats": {"median": 1e-3, "min": 0.9e-3, "rounds": 3},
        "first_call_s": 2e-3,
        "retraces": 0,
        "iterations_per_round": 10,
    }


def _doc() -> dict:
    """A results document with one measurement of every kind, as the plugin writes them."""

    def m(kind: str, name: str, **payload) -> dict:
        return {"test": "t.py::t", "name": name, "id": f"t.py::t::{name}", "kind": kind, **payload}

    ratio = {"a": "a", "b": "b", "estimate": 1.0, "low": 0.9, "high": 1.1, "rounds": 8}
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": "2026-12-01T00:00:00+00:00",
        "machine": {"id": "m-1", "cpu_model": "cpu", "cores": 2},
        "commit": {"id": "abc", "dirty": False},
        "measurements": [
            m("measure", "sum", candidate=_cand("sum"), per=None, unit=None, per_unit_s=None),
            m(
                "compare",
                "a+b",
                comparison={
                    "candidates": [_cand("a"), _cand("b")],
                    "verdicts": [
                        {
                            "assertion": "assert_no_slower",
                            "verdict": "pass",
                            "rule": "r",
                            "ratio": ratio,
                        }
                    ],  # fmt: skip
                },
            ),
            m(
                "steps",
                "steps",
                steps={
                    "samples_s": [1e-3, 2e-3],
                    "stats": {"median": 1.5e-3, "min": 1e-3, "steps_per_s": 666.0, "rounds": 2},
                    "first_step_s": 0.1,
                    "retraces": 0,
                },
            ),
            m(
                "scaling",
                "scaling",
                verdict="pass",
                scaling={
                    "law": "linear",
                    "slope": 1.0,
                    "low": 0.9,
                    "high": 1.1,
                    "expected": 1.0,
                    "tolerance": 0.25,
                    "rounds": 8,
                    "level": 0.99,
                    "sizes": [1, 2, 4],
                    "median_s": [1e-3, 2e-3, 4e-3],
                    "per_unit_s": None,
                    "unit": None,
                },  # fmt: skip
            ),
            m("record", "speedup", value=2.5, unit="x"),
        ],
    }


def test_the_valid_document_passes_and_every_reader_reads_it(tmp_path: Path, capsys) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_doc()))
    assert load_document(path)["measurements"][0]["kind"] == "measure"
    assert main(["report", str(path), "--no-plots"]) == 0
    capsys.readouterr()


def _break(where: int, edit) -> dict:
    doc = copy.deepcopy(_doc())
    edit(doc["measurements"][where])
    return doc


BROKEN = {
    "samples that are strings": (
        _break(0, lambda m: m["candidate"].__setitem__("samples_s", ["1e-3", "2e-3"])),
        "t.py::t::sum (kind 'measure'): `candidate.samples_s` must be a list of finite positive",
    ),
    "a measurement without candidate": (
        _break(0, lambda m: m.pop("candidate")),
        "t.py::t::sum (kind 'measure'): `candidate` is missing.",
    ),
    "a NaN sample": (
        _break(2, lambda m: m["steps"].__setitem__("samples_s", [1e-3, math.nan])),
        "`steps.samples_s` must be a list of finite positive numbers",
    ),
    "a negative sample": (
        _break(1, lambda m: m["comparison"]["candidates"][1].__setitem__("samples_s", [-1.0])),
        "`comparison.candidates[1]`: `samples_s` must be a list of finite positive numbers",
    ),
    "a candidate without name": (
        _break(1, lambda m: m["comparison"]["candidates"][0].pop("name")),
        "`comparison.candidates[0]`: `name` is missing.",
    ),
    "a verdict without ratio bounds": (
        _break(1, lambda m: m["comparison"]["verdicts"][0]["ratio"].pop("low")),
        "`comparison.verdicts[0]`: `ratio.low` is missing.",
    ),
    "a missing kind": (_break(4, lambda m: m.pop("kind")), "`kind` is missing."),
    "an id that is not a string": (_break(4, lambda m: m.__setitem__("id", 3)), "`id` must be"),
    "a record value that is a string": (
        _break(4, lambda m: m.__setitem__("value", "2.5")),
        "`value` must be a finite number, got '2.5'.",
    ),
    "scaling medians not one per size": (
        _break(3, lambda m: m["scaling"].__setitem__("median_s", [1e-3])),
        "`scaling.median_s` must have one value per size (3), got 1.",
    ),
    "a median that is a string": (
        _break(0, lambda m: m["candidate"]["stats"].__setitem__("median", "1 ms")),
        "`candidate.stats.median` must be a number or null, got '1 ms'.",
    ),
    "a steps count that is not an integer": (
        _break(2, lambda m: m["steps"]["stats"].__setitem__("rounds", "2")),
        "`steps.stats.rounds` must be an integer",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_malformed_measurement_is_one_clean_schema_error(tmp_path: Path, case: str) -> None:
    doc, message = BROKEN[case]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SchemaError) as info:
        load_document(path)
    assert str(info.value).startswith(f"{path}: corrupted results file: measurement ")
    assert message in str(info.value)


def test_unknown_kinds_pass_for_forward_compatibility() -> None:
    doc = _doc()
    doc["measurements"].append(
        {"test": "t.py::t", "name": "mem", "id": "t.py::t::mem", "kind": "energy", "joules": 1}
    )
    validate_document(doc, "r.json")
    # ...but every kind still needs what every reader indexes.
    doc["measurements"][-1].pop("test")
    with pytest.raises(SchemaError, match=r"measurement t.py::t::mem: `test` is missing"):
        validate_document(doc, "r.json")


@pytest.mark.parametrize("case", ["samples that are strings", "a measurement without candidate"])
def test_report_and_export_asv_give_the_clean_error(tmp_path: Path, capsys, case: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(BROKEN[case][0]))
    assert main(["report", str(path), "--no-plots"]) == 2
    assert main(["export-asv", str(path), "--results-dir", str(tmp_path / "asv")]) == 2
    err = capsys.readouterr().err
    assert err.count("perfsuite: error: `RESULTS.json`: ") == 2
    assert BROKEN[case][1] in err
    assert not (tmp_path / "asv").exists()


def test_ab_reading_a_malformed_run_is_an_ab_error(tmp_path: Path) -> None:
    path = tmp_path / "base-000.json"
    path.write_text(json.dumps(BROKEN["samples that are strings"][0]))
    cfg = _ab.AbConfig(base="HEAD", head=None, pytest_args=(), fail=FailExpr("median", 0.05))
    with pytest.raises(_ab_runs.AbError, match=r"BASE run 1 wrote no usable results: .*samples_s"):
        _ab_runs._result(cfg, "BASE", 0, tmp_path, ["pytest"], path, 0, "", 1.0)


def test_a_malformed_baseline_is_a_usage_error_not_a_traceback(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.perf
        def test_t(perf):
            perf.measure(lambda: None, name="sum")
        """
    )
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(BROKEN["samples that are strings"][0]))
    result = pytester.runpytest("--perf", "--perf-quick", f"--perf-compare={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --perf-compare={bad}: *`candidate.samples_s` must be*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_written_documents_are_strict_json(tmp_path: Path, capsys) -> None:
    """An unbounded interval is written as null (JSON has no Infinity) and reads back."""
    doc = _doc()
    ratio = doc["measurements"][1]["comparison"]["verdicts"][0]["ratio"]
    ratio["low"], ratio["high"] = 0.0, math.inf
    doc["measurements"][3]["scaling"]["high"] = math.inf
    path = tmp_path / "r.json"
    write_json(path, doc)
    written = _strict(path.read_text())
    assert written["measurements"][1]["comparison"]["verdicts"][0]["ratio"]["high"] is None
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1x [0, n/a] pass" in out
    assert "slope 1.00 [0.90, n/a] pass" in out


def test_exclusive_writes_never_replace_a_file(tmp_path: Path, monkeypatch) -> None:
    from perfsuite import _results

    path = tmp_path / "r.json"
    _results.write_atomic(path, "first", exclusive=True)
    with pytest.raises(FileExistsError):
        _results.write_atomic(path, "second", exclusive=True)
    assert path.read_text() == "first"

    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(_results.os, "link", no_links)  # e.g. a file system without them
    _results.write_atomic(tmp_path / "s.json", "third", exclusive=True)
    with pytest.raises(FileExistsError):
        _results.write_atomic(path, "fourth", exclusive=True)
    assert (tmp_path / "s.json").read_text() == "third"
    assert path.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "s.json"]
