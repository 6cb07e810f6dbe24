"""The terminal summary fits 120 columns and reads ratios one way."""

from __future__ import annotations

import json
from pathlib import Path

from perfsuite._report import speed_words, terminal_table


#: A real results document: the whole perf suite on an H200 (docs/measurements-h100.md).
H200 = Path(__file__).parents[2] / "docs" / "data" / "h200_perf_suite_mean.json"


def test_the_summary_of_a_real_suite_fits_120_columns():
    doc = json.loads(H200.read_text())
    text = terminal_table(doc["measurements"])
    tests = {m["test"] for m in doc["measurements"]}
    for line in text.splitlines():
        if line not in tests:  # a test's own id heads its group, as pytest prints it
            assert len(line) <= 120, line
    assert "tests/eqx/test_perf_train_step.py::test_cached_step_speedup::cached" not in text
    assert "  cached " in text
    verbose = terminal_table(doc["measurements"], verbose=True)
    assert "tests/eqx/test_perf_train_step.py::test_cached_step_speedup::cached" in verbose


def test_ratios_are_spelled_out_as_faster_or_slower():
    assert speed_words("a", "b", 2.0, 1.5, 2.5) == "a 2x faster than b [1.5x, 2.5x]"
    assert speed_words("a", "b", 0.5, 0.4, 0.8) == "a 2x slower than b [1.25x, 2.5x]"
