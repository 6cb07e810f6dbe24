"""`perfsuite report`: text and Markdown tables per test, PNG plots next to the results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perfsuite.cli import main


INNER = """
import pytest


def work(n):
    return sum(range(n))


@pytest.mark.perf
def test_all(perf):
    perf.measure(lambda: work(1000), name="sum", per=1000, unit="item")
    perf.steps(lambda s, b: s + work(b), 0, [200], n=30, name="train")
    perf.assert_scaling(
        lambda n: (lambda: work(n)), [1000, 2000, 4000, 8000], law="linear", tolerance=0.6
    )
    perf.record("speedup", 3.5, "x")


@pytest.mark.perf
def test_compare(perf):
    cmp = perf.compare(small=lambda: work(100), large=lambda: work(3000))
    cmp.assert_speedup("small", over="large", at_least=2.0)
"""


def make_results(pytester: pytest.Pytester) -> Path:
    """A real results document (every kind of measurement) from an inner `--perf` run."""
    pytester.makepyfile(test_inner=INNER)
    out = pytester.path / "out" / "results.json"
    pytester.runpytest("--perf", "--perf-quick", "-p", "no:cacheprovider", f"--perf-json={out}")
    assert out.exists()
    return out


def test_report_markdown_with_plots(pytester: pytest.Pytester, capsys) -> None:
    results = make_results(pytester)
    capsys.readouterr()  # the inner run's output
    md_path = pytester.path / "out" / "report.md"
    assert main(["report", str(results), "--markdown", "-o", str(md_path)]) == 0
    md = md_path.read_text()
    assert md.startswith("## perfsuite results")
    assert "### `test_inner.py::test_all`" in md
    assert "### `test_inner.py::test_compare`" in md
    assert (
        "| measurement | per call | p50 | p90 | p99 | max | per unit | rounds | first call | memory | result |"
        in md
    )
    assert "/item |" in md  # per-unit time
    assert "steps/s" in md
    assert "scaling(linear)" in md
    assert "assert_speedup(small vs large)" in md  # the ratio with its interval and verdict
    pngs = sorted((pytester.path / "out").glob("*.png"))
    assert [p.name.rsplit("-", 1)[-1] for p in pngs] == ["scaling.png", "steps.png"]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png.name})" in md  # referenced relative to the Markdown file
    assert capsys.readouterr().out == ""


def test_report_text_to_stdout(pytester: pytest.Pytester, capsys) -> None:
    results = make_results(pytester)
    capsys.readouterr()
    assert main(["report", str(results), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine ")
    assert "test_inner.py::test_all::sum" in out
    assert "per call" in out
    assert "p99" in out
    assert not list((pytester.path / "out").glob("*.png"))


def test_report_shows_what_did_not_pass(tmp_path: Path, capsys) -> None:
    doc = {
        "schema": "perfsuite.results",
        "schema_version": 1,
        "created": "2026-11-23T00:00:00+00:00",
        "machine": {"id": "m", "cpu_model": "cpu", "cores": 2},
        "commit": {"id": "abc", "dirty": False},
        "measurements": [
            {
                "test": "t.py::t",
                "name": "scaling",
                "id": "t.py::t::scaling",
                "kind": "scaling",
                "verdict": "fail",
                "scaling": {
                    "law": "linear",
                    "slope": 2.0,
                    "low": 1.9,
                    "high": 2.1,
                    "expected": 1.0,
                    "tolerance": 0.25,
                    "rounds": 12,
                    "level": 0.99,
                    "sizes": [1, 2, 4],
                    "median_s": [1e-3, 4e-3, 16e-3],
                    "per_unit_s": None,
                    "unit": None,
                },  # fmt: skip
            }
        ],
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "fail: t.py::t::scaling slope 2.000 [1.900, 2.100] over 12 rounds; `linear` expects 1.000"
        in out
    )
    [png] = tmp_path.glob("r-*-scaling.png")
    assert f"  plot: {png}" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such results file"),
        ("{oops", "not a readable JSON results file"),
        ('{"schema": "x"}', "not a perfsuite results file"),
    ],
)
def test_report_bad_input_is_a_clear_error(tmp_path: Path, capsys, content, message) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("perfsuite: error: `RESULTS.json`: ")
    assert message in err


def test_report_takes_no_pytest_args(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path / "r.json"), "--", "-k", "x"]) == 2
    assert "`report` takes no pytest arguments" in capsys.readouterr().err
