"""What `perfsuite ab` was asked to do: one frozen object, shared by the loop and the runs."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import AbError
from ._options import FailExpr


@dataclass(frozen=True)
class AbConfig:
    """Everything `perfsuite ab` was asked to do, checked once (`from_args`)."""

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

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, pytest_args: list[str], *, base: str, head: str | None
    ) -> AbConfig:
        """The config of `perfsuite ab`, `bisect` and `ab-verdict` from their parsed options
        (those a command does not have take their defaults); bad combinations are an
        `AbError` naming the options and the rule."""
        if args.max_runs < args.min_runs:
            raise AbError(
                f"`--max-runs` ({args.max_runs}) must be at least `--min-runs` ({args.min_runs})."
            )
        jobs = getattr(args, "jobs", 1)
        pin = not getattr(args, "no_pin", False)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        if jobs > 1 and (args.sequential or not pin or jobs > cpus):
            raise AbError(
                f"`--jobs` {jobs}: pairs run at once need a CPU each and pinning, so it must "
                f"be at most the {cpus} CPU(s) this process may use, without `--sequential` or "
                "`--no-pin`."
            )
        fail, explicit = args.fail or (FailExpr("median", 0.05), False)
        return cls(
            base=base,
            head=head,
            pytest_args=tuple(pytest_args),
            fail=fail,
            stat=fail.stat if explicit else None,
            min_runs=args.min_runs,
            max_runs=args.max_runs,
            budget_s=args.budget,
            level=args.level,
            test=args.test,
            repo=args.repo,
            pin=pin,
            sequential=args.sequential,
            jobs=jobs,
            fail_memory=getattr(args, "fail_memory", None) or 0.0,
            fail_counts_toolchain=getattr(args, "fail_counts_toolchain", False),
        )
