"""Progress on long work (issue 13): a comparison still undecided after a few seconds says so.

An assertion on a comparison adds rounds until its interval decides the claim or the budget
(20 s by default, per comparison) runs out. Silent, that looks like a hung test. So, as
`perfsuite ab` prints a line per pair, each undecided look at the data that comes at least
`--perf-progress` seconds (default 5) after the comparison started, and after the previous
line, prints one line: the rounds so far and the current interval, e.g.

    perf: tests/test_x.py::test_y: fast vs ref undecided after 6 s, 48 rounds: fast 1.04x
    faster than ref [0.97x, 1.12x] (99% CI), 5.1 s of the 20 s budget

The line goes to the terminal while the test runs (with pytest's capture suspended, as its
live logging does), and only where pytest's terminal reporter is active and not with `-qq`
(nor in xdist workers, which have no terminal of their own). It is written between rounds,
never inside one, so printing costs the measurement nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any


class ProgressLines:
    """Writes progress lines of one session's comparisons to pytest's terminal."""

    def __init__(self, write: Callable[[str], None], after_s: float):
        self._write = write
        #: Seconds from a comparison's start (and between lines) before a line is printed.
        self.after_s = after_s

    @classmethod
    def from_config(cls, config: Any) -> ProgressLines | None:
        """The session's progress lines, or None where they are not wanted or not seen."""
        after_s = config.getoption("perf_progress", None)
        if after_s is None or config.option.verbose <= -2:
            return None
        if os.environ.get("PYTEST_XDIST_WORKER"):
            return None  # a worker's terminal is nobody's: its output is not shown
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return None
        capman = config.pluginmanager.get_plugin("capturemanager")

        def write(line: str) -> None:
            # Captured output would show the line only with the test's report, too late.
            if capman is not None:
                with capman.global_and_fixture_disabled():
                    reporter.write_line(line, yellow=True)
            else:
                reporter.write_line(line, yellow=True)

        return cls(write, after_s)

    def for_comparison(self, nodeid: str, started: float) -> Callable[[Any, Any], None]:
        """The hook a `Comparison` calls at every undecided look (`on_progress(cmp, ratio)`).

        `started`: `time.monotonic()` when the comparison began (before its first call).
        """
        state = {"last": started}

        def on_progress(cmp: Any, ratio: Any) -> None:
            now = time.monotonic()
            if now - state["last"] < self.after_s:
                return
            state["last"] = now
            self._write(progress_line(nodeid, now - started, cmp, ratio))

        return on_progress


def progress_line(nodeid: str, elapsed_s: float, cmp: Any, ratio: Any) -> str:
    """One line: which comparison, how long, how many rounds, the current interval."""
    from ._report import speed_words

    budget = cmp._engine.settings.budget_s
    return (
        f"perf: {nodeid}: {ratio.a} vs {ratio.b} undecided after {elapsed_s:.0f} s, "
        f"{ratio.rounds} rounds: "
        f"{speed_words(ratio.a, ratio.b, ratio.estimate, ratio.low, ratio.high)} "
        f"({ratio.level:.0%} CI), {cmp.spent_s:.1f} s of the {budget:g} s budget"
    )
