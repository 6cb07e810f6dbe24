"""`--perf-save`, `--perf-compare`, `--perf-fail`, `--perf-allow-cross-machine` through pytester."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perfsuite._results import machine_fingerprint


WORKLOAD = """
import pytest

N = {n}


def work(n):
    s = 0
    for i in range(n):
        s += i
    return s


@pytest.mark.perf
def test_loop(perf):
    perf.measure(lambda: work(N), name="loop")
"""


def _write(pytester: pytest.Pytester, n: int = 2000) -> None:
    pytester.makepyfile(test_work=WORKLOAD.format(n=n))


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--perf", "--perf-quick", "-p", "no:cacheprovider", *args)


def _saved(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / ".perf").glob("*/[0-9]*_*.json"))


def test_save_numbers_baselines_under_the_machine_id(pytester: pytest.Pytester) -> None:
    _write(pytester)
    _run(pytester, "--perf-save=main").assert_outcomes(passed=1)
    _run(pytester, "--perf-save=main").assert_outcomes(passed=1)
    machine = machine_fingerprint()["id"]
    assert [p.relative_to(pytester.path / ".perf").as_posix() for p in _saved(pytester)] == [
        f"{machine}/0001_main.json",
        f"{machine}/0002_main.json",
    ]
    doc = json.loads(_saved(pytester)[0].read_text())
    assert doc["machine"]["id"] == machine
    assert doc["measurements"][0]["id"] == "test_work.py::test_loop::loop"


def test_compare_with_a_saved_name_attaches_a_verdict(pytester: pytest.Pytester) -> None:
    _write(pytester)
    _run(pytester, "--perf-save=main").assert_outcomes(passed=1)
    out = pytester.path / "cur.json"
    result = _run(pytester, "--perf-compare=main", "--perf-fail=50%", f"--perf-json={out}")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*vs baseline main: *x the baseline's time [[]*]*"])
    doc = json.loads(out.read_text())
    entry = doc["measurements"][0]["baseline"]
    assert entry["verdict"] in ("same", "inconclusive", "improvement")
    assert entry["low"] <= entry["ratio"] <= entry["high"]
    assert entry["limit"] == pytest.approx(1.5)
    assert doc["baseline"]["path"].endswith("0001_main.json")
    assert doc["baseline"]["only_in_current"] == []


def test_regression_beyond_the_limit_fails_the_session_with_numbers(
    pytester: pytest.Pytester,
) -> None:
    _write(pytester, n=500)
    _run(pytester, "--perf-save=fast").assert_outcomes(passed=1)
    _write(pytester, n=5000)  # ten times the work
    result = _run(pytester, "--perf-compare=fast", "--perf-fail=median:5%")
    result.assert_outcomes(passed=1)  # the test itself passed; the session fails
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*REGRESSION test_work.py::test_loop::loop: median per session relative to the "
            "machine-speed reference *x the baseline's (raw *x: * vs *; the reference itself "
            "*x; 99% interval *x..*x from the default band x1.36: only 1 baseline session, "
            "fewer than the 5 needed*; * rounds this session, * per baseline session). "
            "Rule: --perf-fail=median:5% fails when the lower bound > 1.05x. The gate judges "
            "each series relative to a machine-speed reference*; it cannot see smaller "
            "effects: use `perfsuite ab`*A change that slows the reference too*raw ratio*"
        ]
    )


def test_without_perf_fail_a_regression_is_reported_not_failed(pytester: pytest.Pytester) -> None:
    _write(pytester, n=500)
    _run(pytester, "--perf-save=fast").assert_outcomes(passed=1)
    _write(pytester, n=5000)
    result = _run(pytester, "--perf-compare=fast")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*vs baseline fast*regression*",
            "perf: REGRESSION test_work.py::test_loop::loop: median per session*"
            "Rule: regression when the lower bound > 1.05x (the default 5% limit)*"
            "(not failing: no --perf-fail)",
        ]
    )


def test_compare_with_a_results_path(pytester: pytest.Pytester) -> None:
    _write(pytester)
    _run(pytester, "--perf-json=base.json").assert_outcomes(passed=1)
    result = _run(pytester, "--perf-compare=base.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*vs baseline base.json*"])


def test_unknown_baseline_name_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _write(pytester)
    result = _run(pytester, "--perf-compare=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--perf-compare=nope: no baseline named 'nope' for this machine*--perf-save=nope*"]
    )


def test_a_directory_of_that_name_is_not_taken_for_a_file(pytester: pytest.Pytester) -> None:
    _write(pytester)
    _run(pytester, "--perf-save=main").assert_outcomes(passed=1)
    pytester.mkdir("main")
    result = _run(pytester, "--perf-compare=main")
    assert result.ret == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "*not a readable JSON results file*"),
        (
            '{"schema": "perfsuite.results", "schema_version": 99, "measurements": []}',
            "*schema version 99; this perfsuite reads version 1*",
        ),  # fmt: skip
        ('{"something": "else"}', "*not a perfsuite results file*"),
        (
            '{"schema": "perfsuite.results", "schema_version": 1, '
            '"measurements": [{"kind": "measure", "id": "x"}]}',
            "*corrupted results file*",
        ),
    ],
)
def test_corrupted_baseline_is_an_error_and_never_overwritten(
    pytester: pytest.Pytester, content: str, message: str
) -> None:
    _write(pytester)
    folder = pytester.path / ".perf" / machine_fingerprint()["id"]
    folder.mkdir(parents=True)
    bad = folder / "0001_main.json"
    bad.write_text(content)
    result = _run(pytester, "--perf-compare=main", "--perf-save=main")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --perf-compare=main: {message}"])
    assert bad.read_text() == content
    assert sorted(p.name for p in folder.iterdir()) == ["0001_main.json"]


def _other_machine(pytester: pytest.Pytester, name: str) -> Path:
    """Save a baseline here, then move it to another machine's folder and fingerprint."""
    _run(pytester, f"--perf-save={name}").assert_outcomes(passed=1)
    [path] = _saved(pytester)
    doc = json.loads(path.read_text())
    doc["machine"]["cpu_model"] = "Imaginary CPU 9000"
    doc["machine"]["id"] = "x86_64-000000000000"
    other = path.parent.parent / "x86_64-000000000000" / path.name
    other.parent.mkdir()
    other.write_text(json.dumps(doc))
    path.unlink()
    return other


def test_baseline_from_another_machine_is_refused_saying_what_differs(
    pytester: pytest.Pytester,
) -> None:
    _write(pytester)
    other = _other_machine(pytester, "main")
    for ref in ("main", str(other)):
        result = _run(pytester, f"--perf-compare={ref}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            [
                "*another machine*cpu_model: baseline 'Imaginary CPU 9000' vs here*"
                "--perf-allow-cross-machine*"
            ]  # fmt: skip
        )


def test_allow_cross_machine_compares_anyway(pytester: pytest.Pytester) -> None:
    _write(pytester)
    _other_machine(pytester, "main")
    result = _run(pytester, "--perf-compare=main", "--perf-allow-cross-machine")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*vs baseline main*"])


def test_perf_fail_needs_perf_compare(pytester: pytest.Pytester) -> None:
    _write(pytester)
    result = _run(pytester, "--perf-fail=5%")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perf-fail needs a baseline*--perf-compare=NAME|PATH*"])


@pytest.mark.parametrize("bad", ["5", "-5%", "max:5%", "0%", "five%"])
def test_bad_perf_fail_names_the_option(pytester: pytest.Pytester, bad: str) -> None:
    result = pytester.runpytest("--perf", f"--perf-fail={bad}", "--perf-compare=x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perf-fail*Could not parse value*median:5%*"])


# --------------------------------------------------------------------------- unit level


def test_a_comparison_gets_one_verdict_per_candidate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_cmp="""
        import pytest

        @pytest.mark.perf
        def test_two(perf):
            perf.compare(small=lambda: sum(range(100)), large=lambda: sum(range(1000)))
        """
    )
    _run(pytester, "--perf-save=main").assert_outcomes(passed=1)
    result = _run(pytester, "--perf-compare=main")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*vs baseline main (small): *x the baseline's time [[]*",
            "*vs baseline main (large): *x the baseline's time [[]*",
        ]
    )
