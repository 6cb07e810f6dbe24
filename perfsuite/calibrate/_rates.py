"""What every calibration shares: rates with 95% Wilson intervals, Markdown tables, a
deadline, progress lines and the output files.

A rate is `hits` of `trials` (failed sessions, wrong verdicts, false alarms). Its interval is
`perfsuite._stats.wilson_interval` at 95%, the one every calibration in docs/ was computed
with; a cell prints the rate and the interval at the precision its table always had (`.0%`
for the gates' session tables, `.2%` for the verdict table, whose goals are fractions of a
percent).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Rate:
    """`hits` of `trials`, with its 95% Wilson interval."""

    hits: int
    trials: int

    @property
    def rate(self) -> float | None:
        """The share of hits; None when nothing was tried (a table says "n/a")."""
        return self.hits / self.trials if self.trials else None

    @property
    def wilson95(self) -> tuple[float, float]:
        from .._stats import wilson_interval  # NumPy: not for `perfsuite --help`

        return wilson_interval(self.hits, self.trials)

    def cell(self, digits: int = 0) -> str:
        """`12% [5%, 25%]` (`digits` decimals of a percent); `n/a` for no trials."""
        if not self.trials:
            return "n/a"
        lo, hi = self.wilson95
        return f"{self.hits / self.trials:.{digits}%} [{lo:.{digits}%}, {hi:.{digits}%}]"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a Markdown table (every cell as `str` gives it)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


class Deadline:
    """`--time-limit`/`--budget`: no new trial starts once `limit_s` seconds have passed."""

    def __init__(self, limit_s: float | None):
        self.limit_s, self.started = limit_s, time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def passed(self) -> bool:
        return self.limit_s is not None and self.elapsed > self.limit_s


def progress(line: str) -> None:
    """One progress line on stderr (stdout carries the table)."""
    print(line, file=sys.stderr, flush=True)


def write_json(path: Path | None, doc: Any) -> None:
    """`doc` as indented JSON at `path` (atomically: a reader never sees half a file)."""
    if path is not None:
        from .._results import write_atomic

        write_atomic(Path(path), json.dumps(doc, indent=1) + "\n")


def write_text(path: Path | None, text: str) -> None:
    if path is not None:
        from .._results import write_atomic

        write_atomic(Path(path), text if text.endswith("\n") else text + "\n")
