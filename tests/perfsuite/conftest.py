"""Helpers for testing the plugin through `pytester`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def run_perf(pytester: pytest.Pytester):
    """Run an inner pytest with `--perf --perf-quick` and return (result, results document).

    Quick settings keep the inner measurements short; verdicts keep the same confidence.
    """

    def run(*args: str, subprocess: bool = False):
        out = pytester.path / "results.json"
        argv = ["--perf", "--perf-quick", f"--perf-json={out}", "-p", "no:cacheprovider", *args]
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        result = runner(*argv)
        doc = json.loads(Path(out).read_text()) if out.exists() else None
        return result, doc

    return run
