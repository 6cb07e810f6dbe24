"""One error family, shown under the public name; the lazy exports match the typed ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import perfsuite


def test_every_error_is_a_perf_error_and_keeps_its_builtin_kind():
    assert issubclass(perfsuite.PerfFailure, perfsuite.PerfError)
    assert issubclass(perfsuite.PerfFailure, AssertionError)  # pytest: a failure, not an error
    assert issubclass(perfsuite.PerfInconclusive, perfsuite.PerfFailure)
    assert issubclass(perfsuite.PerfUsageError, ValueError)
    for cls in (perfsuite.SchemaError, perfsuite.AbError, perfsuite.AsvExportError):
        assert issubclass(cls, perfsuite.PerfError)
    from perfsuite import _asv_export, _results
    from perfsuite.ab import _runs
    from perfsuite.instruments import PerfUsageError

    # Defined once: the modules that raise them re-use the same classes.
    assert _results.SchemaError is perfsuite.SchemaError
    assert _runs.AbError is perfsuite.AbError
    assert _asv_export.AsvExportError is perfsuite.AsvExportError
    assert PerfUsageError is perfsuite.PerfUsageError


def test_a_failing_perf_test_shows_the_public_name(run_perf, pytester):
    pytester.makepyfile(
        """
import pytest

@pytest.mark.perf
def test_x(perf):
    cmp = perf.compare(a=lambda: sum(range(100)), b=lambda: sum(range(100)))
    cmp.assert_speedup("a", over="b", at_least=50)
"""
    )
    result, _ = run_perf()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E   *perfsuite.PerfFailure: `assert_speedup`*"])
    result.stdout.no_fnmatch_line("*perfsuite._errors.PerfFailure*")


def test_lazy_exports_and_typed_imports_cannot_drift_apart():
    tree = ast.parse(Path(perfsuite.__file__).read_text())
    typed = {
        alias.asname: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names
        if alias.asname
    }
    assert {name: f".{module}" for name, module in typed.items()} == perfsuite._EXPORTS
    assert set(perfsuite.__all__) == {*perfsuite._EXPORTS, "__version__"}
    for name in perfsuite._EXPORTS:
        assert getattr(perfsuite, name).__name__ == name


def test_commands_turn_any_perf_error_into_one_line(monkeypatch, capsys):
    from perfsuite import cli

    def boom(args):
        raise perfsuite.SchemaError("x.json: corrupted results file.")

    monkeypatch.setattr(cli, "_report", boom)
    assert cli.main(["report", "x.json"]) == 2
    assert capsys.readouterr().err == "perfsuite: error: x.json: corrupted results file.\n"


@pytest.mark.parametrize("module", ["perfsuite._errors"])
def test_the_error_module_imports_nothing(module):
    # The plugin loads it in every pytest run: it must not pull in NumPy or a framework.
    import importlib
    import sys

    src = Path(importlib.import_module(module).__file__).read_text()
    imports = [n for n in ast.walk(ast.parse(src)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [getattr(n, "module", None) for n in imports] == ["__future__"]
    assert module in sys.modules


def test_a_missing_key_is_a_usage_error_and_a_key_error_shown_as_its_message() -> None:
    from perfsuite import PerfKeyError, PerfUsageError
    from perfsuite._counts_model import Counts

    counts = Counts(({"python_calls": 3},))
    with pytest.raises(PerfKeyError) as info:
        counts["bogus"]
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, PerfUsageError)
    assert str(info.value).startswith("no counter 'bogus' was measured")  # not its repr
    assert type(info.value).__module__ == "perfsuite"
    # A Mapping's `in` and `.get` rely on the KeyError.
    assert "bogus" not in counts
    assert counts.get("bogus") is None
