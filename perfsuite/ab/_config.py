"""What `perfsuite ab` was asked to do: one frozen object, shared by the loop and the runs.

`AbConfig` checks itself when it is made, however it is made (`from_args` for the commands,
or directly from Python): a bad value is a `PerfUsageError` naming the field, the option of
the command that sets it, the value, and the rule it broke. The commands' parsers already
refuse malformed text; what only the combination or the machine can tell (`--max-runs`
below `--min-runs`, `--jobs` beyond the CPUs) is caught here, once, for every command.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import PerfUsageError
from .._values import FailExpr, PairedTest, RunStatistic, words


#: The command-line option that sets each field (named in the errors next to the field).
OPTIONS = {
    "base": "BASE",
    "head": "HEAD",
    "pytest_args": "-- <pytest args>",
    "fail": "--fail",
    "stat": "--fail STAT:PCT",
    "min_runs": "--min-runs",
    "max_runs": "--max-runs",
    "budget_s": "--budget",
    "level": "--level",
    "test": "--test",
    "repo": "--repo",
    "run_timeout_s": "(no option)",
    "python": "(no option)",
    "pin": "--no-pin",
    "sequential": "--sequential",
    "jobs": "--jobs",
    "fail_memory": "--fail-memory",
    "fail_counts_toolchain": "--fail-counts-toolchain",
}


def _name(key: str) -> str:
    return f"`{key}`" if OPTIONS[key] == "(no option)" else f"`{key}` ({OPTIONS[key]})"


def _usage(key: str, value: Any, rule: str) -> PerfUsageError:
    return PerfUsageError(f"{_name(key)} = {value!r}: {rule}")


def _allowed_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


@dataclass(frozen=True)
class AbConfig:
    """Everything `perfsuite ab` was asked to do, checked when made (see the module docstring)."""

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

    def __post_init__(self) -> None:
        # Sequences and paths given as their common stand-ins (a list, a str) are taken as
        # meant; everything else must already be of its type.
        if isinstance(self.pytest_args, list):
            object.__setattr__(self, "pytest_args", tuple(self.pytest_args))
        if isinstance(self.repo, str):
            object.__setattr__(self, "repo", Path(self.repo))
        self._check()

    def _check(self) -> None:
        if not isinstance(self.base, str) or not self.base.strip():
            raise _usage("base", self.base, "must be a revision, e.g. 'main' or 'HEAD~1'.")
        if not isinstance(self.python, str) or not self.python.strip():
            raise _usage("python", self.python, "must be the path of a Python interpreter.")
        if self.head is not None and (not isinstance(self.head, str) or not self.head.strip()):
            raise _usage(
                "head", self.head, "must be a revision (e.g. 'HEAD'), or None for the working tree."
            )
        if not isinstance(self.pytest_args, tuple) or not all(
            isinstance(a, str) for a in self.pytest_args
        ):
            raise _usage("pytest_args", self.pytest_args, "must be a tuple of strings.")
        if not isinstance(self.fail, FailExpr):
            raise _usage("fail", self.fail, "must be a FailExpr, e.g. FailExpr('median', 0.05).")
        if not (_real(self.fail.fraction) and self.fail.fraction > 0):
            raise _usage(
                "fail", str(self.fail), "the allowed slowdown must be a finite fraction > 0."
            )
        for key, value in (("fail", self.fail.stat), ("stat", self.stat)):
            if not (value is None and key == "stat") and value not in words(RunStatistic):
                raise _usage(
                    key, value, f"the statistic per run must be one of {words(RunStatistic)}."
                )
        for key in ("min_runs", "max_runs", "jobs"):
            value = getattr(self, key)
            if not _integer(value) or value < 1:
                raise _usage(key, value, "must be a positive integer.")
        if self.max_runs < self.min_runs:
            raise PerfUsageError(
                f"{_name('max_runs')} = {self.max_runs} must be at least "
                f"{_name('min_runs')} = {self.min_runs}: the first verdict comes after "
                "`min_runs` pairs."
            )
        for key in ("budget_s", "run_timeout_s"):
            value = getattr(self, key)
            if not (_real(value) and value > 0):
                raise _usage(key, value, "must be a finite number of seconds > 0.")
        if not (_real(self.level) and 0.5 <= self.level < 1):
            raise _usage("level", self.level, "must be a confidence level in [0.5, 1).")
        if self.test not in words(PairedTest):
            raise _usage("test", self.test, f"must be one of {words(PairedTest)}.")
        if not isinstance(self.repo, Path):
            raise _usage("repo", self.repo, "must be a path (a folder of the git repository).")
        for key in ("pin", "sequential", "fail_counts_toolchain"):
            if not isinstance(getattr(self, key), bool):
                raise _usage(key, getattr(self, key), "must be True or False.")
        if not (_real(self.fail_memory) and self.fail_memory >= 0):
            raise _usage("fail_memory", self.fail_memory, "must be a finite fraction >= 0.")
        cpus = _allowed_cpus()
        if self.jobs > 1 and (self.sequential or not self.pin or self.jobs > cpus):
            raise PerfUsageError(
                f"{_name('jobs')} = {self.jobs}: pairs run at once need a CPU "
                f"each and pinning, so it must be at most the {cpus} CPU(s) this process may "
                "use, without `--sequential` or `--no-pin`."
            )

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, pytest_args: list[str], *, base: str, head: str | None
    ) -> AbConfig:
        """The config of `perfsuite ab`, `bisect` and `ab-verdict` from their parsed options
        (those a command does not have take their defaults); checked as any `AbConfig`."""
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
            pin=not getattr(args, "no_pin", False),
            sequential=args.sequential,
            jobs=getattr(args, "jobs", 1),
            fail_memory=getattr(args, "fail_memory", None) or 0.0,
            fail_counts_toolchain=getattr(args, "fail_counts_toolchain", False),
        )


def _integer(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _real(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
