"""Nothing lost, nothing half-saved: bad input refused early, results never clobbered or lost."""

from __future__ import annotations

import datetime
import importlib
import json
import os
import types
from pathlib import Path

import pytest


def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


# --------------------------------------------------------------------------- names


DUPLICATES = """
import pytest


def work():
    return sum(range(50))


@pytest.mark.perf
def test_same_name_twice(perf):
    perf.measure(work, name="sum")
    with pytest.raises(ValueError, match=r"`name` 'sum' is already used by another measurement"):
        perf.measure(work, name="sum")


@pytest.mark.perf
def test_measure_named_like_a_candidate(perf):
    perf.compare(a=work, b=work)
    with pytest.raises(ValueError, match=r"`name` 'a' is already used"):
        perf.measure(work, name="a")


@pytest.mark.perf
def test_candidate_named_like_a_measure(perf):
    perf.record("b", 1.0, "x")
    with pytest.raises(ValueError, match=r"`name` 'b' is already used"):
        perf.compare(a=work, b=work)


@pytest.mark.perf
def test_two_compares_sharing_a_candidate(perf):
    perf.compare(a=work, b=work)
    with pytest.raises(ValueError, match=r"`name` 'a' is already used"):
        perf.compare(a=work, c=work)


@pytest.mark.perf
def test_other_tests_may_reuse_a_name(perf):
    perf.measure(work, name="sum")
"""


def test_duplicate_names_in_one_test_are_refused(run_perf, pytester) -> None:
    pytester.makepyfile(test_dup=DUPLICATES)
    result, doc = run_perf()
    result.assert_outcomes(passed=5)
    ids = [m["id"] for m in doc["measurements"]]
    assert len(ids) == len(set(ids)), ids
    assert ids.count("test_dup.py::test_same_name_twice::sum") == 1


# --------------------------------------------------------------------------- bad arguments


BAD_ARGUMENTS = """
import math

import pytest



@pytest.mark.perf
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_record_refuses_non_finite(perf, value):
    with pytest.raises(ValueError, match=r"`value` must be a finite number, got .* for 'x'"):
        perf.record("x", value, "x")
    perf.record("ok", 1.5, "x")


@pytest.mark.perf
def test_scaling_refuses_sizes_that_are_not_positive(perf):
    with pytest.raises(ValueError, match=r"`sizes` must be finite numbers > 0 .*\\[0, -1\\]"):
        perf.assert_scaling(lambda n: (lambda: None), [0, -1, 2, 4])


@pytest.mark.perf
def test_scaling_refuses_per_that_is_not_positive(perf):
    with pytest.raises(ValueError, match=r"`per` must give a finite number > 0 .*\\[0.0\\]"):
        perf.assert_scaling(lambda n: (lambda: None), [1, 2, 4], per=lambda n: n - 1)


@pytest.mark.perf
def test_steps_with_a_short_iterator(perf):
    with pytest.raises(
        ValueError, match=r"`batches` ran out after 4 batches; the steps need warmup \\+ n = 7"
    ):
        perf.steps(lambda s, b: s, 0, iter(range(4)), n=5, warmup=2)
"""


def test_bad_arguments_get_errors_naming_them(run_perf, pytester) -> None:
    pytester.makepyfile(test_bad=BAD_ARGUMENTS)
    result, _ = run_perf()
    result.assert_outcomes(passed=6)
    text = (pytester.path / "results.json").read_text()
    doc = _strict(text)  # no NaN or Infinity in the file
    assert {m["name"] for m in doc["measurements"]} == {"ok"}


# --------------------------------------------------------------------------- results files


ONE_TEST = """
import pytest


@pytest.mark.perf
def test_x(perf):
    perf.measure(lambda: sum(range(100)), name="sum")
"""


class _FrozenClock:
    """`datetime.now()` that always says the same second and microsecond."""

    @staticmethod
    def now(tz=None):
        return datetime.datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=tz)


def _run(pytester: pytest.Pytester, *args: str, **kw) -> pytest.RunResult:
    return pytester.runpytest("--perf", "--perf-quick", "-p", "no:cacheprovider", *args, **kw)


def test_sessions_finishing_at_the_same_moment_keep_their_own_files(
    pytester: pytest.Pytester, monkeypatch
) -> None:
    # From sys.modules, as the plugin imports it (an inner run may have re-imported it).
    _session = importlib.import_module("perfsuite._session")
    monkeypatch.setattr(_session, "_dt", types.SimpleNamespace(datetime=_FrozenClock))
    pytester.makepyfile(test_one=ONE_TEST)
    for _ in range(3):
        _run(pytester).assert_outcomes(passed=1)
    files = sorted((pytester.path / ".perf").glob("results-*.json"))
    assert [p.name for p in files] == [
        "results-20261201-120000-123456-1.json",
        "results-20261201-120000-123456-2.json",
        "results-20261201-120000-123456.json",
    ]
    assert len({p.read_text() for p in files}) == 3  # three documents, none clobbered


def test_a_run_that_measured_nothing_never_replaces_latest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one=ONE_TEST)
    _run(pytester).assert_outcomes(passed=1)
    perf = pytester.path / ".perf"
    latest = (perf / "latest.json").read_text()
    assert len(json.loads(latest)["measurements"]) == 1
    result = _run(pytester, "--co")
    result.stdout.fnmatch_lines(["*perf: nothing measured, so no results file was written; *"])
    _run(pytester, "-k", "nomatch")
    assert (perf / "latest.json").read_text() == latest
    assert len(list(perf.glob("results-*.json"))) == 1


def test_an_interrupted_session_keeps_its_results_but_not_latest(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_one=ONE_TEST)
    _run(pytester).assert_outcomes(passed=1)
    perf = pytester.path / ".perf"
    latest = (perf / "latest.json").read_text()
    pytester.makepyfile(
        test_two="""
        import pytest

        @pytest.mark.perf
        def test_a(perf):
            perf.measure(lambda: None, name="a")
            raise KeyboardInterrupt

        @pytest.mark.perf
        def test_b(perf):
            perf.measure(lambda: None, name="b")
        """
    )
    result = _run(pytester, "test_two.py", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*perf: the session was interrupted: *latest.json is left as*"])
    assert (perf / "latest.json").read_text() == latest
    (partial,) = (p for p in perf.glob("results-*.json") if "test_two" in p.read_text())
    doc = json.loads(partial.read_text())
    assert doc["session"]["interrupted"] is True
    assert [m["name"] for m in doc["measurements"]] == ["a"]


@pytest.fixture
def unwritable(monkeypatch):
    """Make a folder unwritable: chmod, and (as root, who ignores modes) refuse writes there."""
    _results = importlib.import_module("perfsuite._results")
    made = []
    real = _results.write_atomic

    def refuse(path, text, **kw):
        if any(Path(path).is_relative_to(d) for d in made):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, text, **kw)

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".gitignore").write_text("*\n")
        folder.chmod(0o555)
        made.append(folder)
        if os.geteuid() == 0:
            monkeypatch.setattr(_results, "write_atomic", refuse)
        return folder

    yield make
    for folder in made:
        folder.chmod(0o755)


FAILING_TOO = (
    ONE_TEST
    + """

@pytest.mark.perf
def test_fails(perf):
    perf.measure(lambda: None, name="n")
    assert False
"""
)


def test_a_read_only_results_folder_loses_nothing_but_the_file(
    pytester: pytest.Pytester, unwritable
) -> None:
    pytester.makepyfile(test_one=ONE_TEST)
    perf = unwritable(pytester.path / ".perf")
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.OK  # the tests passed; the file is a note, not a failure
    result.stdout.fnmatch_lines(
        [
            "*  sum *",  # the table is printed
            f"perf: could not write the results to {perf}: Permission denied; *",
        ]
    )
    assert result.stdout.str().count("could not write") == 1
    assert "Traceback" not in result.stdout.str()
    pytester.makepyfile(test_one=FAILING_TOO)
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the tests' own status, kept
    result.assert_outcomes(passed=1, failed=1)


def test_an_unwritable_perf_json_is_a_note(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one=ONE_TEST)
    (pytester.path / "a_file").write_text("not a folder")
    target = pytester.path / "a_file" / "results.json"
    result = _run(pytester, f"--perf-json={target}")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["test_one.py::test_x", "*  sum *", "perf: could not write the*"])
    assert f"could not write the results to {target}" in result.stdout.str()
