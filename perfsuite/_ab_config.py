"""What `perfsuite ab` was asked to do: one frozen object, shared by the loop and the runs."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ._options import FailExpr


@dataclass(frozen=True)
class AbConfig:
    """Everything `perfsuite ab` was asked to do, checked once by the CLI."""

    base: str
    head: str | None
    pytest_args: tuple[str, ...]
    fail: FailExpr
    #: Statistic per run forced by `--fail stat:X%`, or None for the median.
    stat: str | None = None
    min_runs: int = 8
    max_runs: int = 30
    budget_s: float = 900.0
    level: float = 0.99
    test: str = "signed-rank"
    repo: Path = field(default_factory=Path.cwd)
    run_timeout_s: float = 600.0
    python: str = sys.executable
    #: Pin both runs of a pair to one CPU (rotating from pair to pair).
    pin: bool = True
    #: Run the two sides of a pair one after the other (for workloads that cannot share the
    #: machine, e.g. a model that fills the GPU's memory).
    sequential: bool = False
    #: Pairs run at once, each pinned to its own CPU from its start (1: one pair at a time).
    jobs: int = 1
    #: `--fail-memory PCT`: allowed growth of an exact source's peak memory (a fraction).
    fail_memory: float = 0.0
    #: A count increase fails even when the runs' toolchains differ (`--fail-counts-toolchain`).
    fail_counts_toolchain: bool = False
