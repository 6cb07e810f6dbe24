"""`AbConfig` checks itself: a bad value is a `PerfUsageError` naming the field, its option,
the value and the rule, however the config is made (directly, `from_args`, `replace`)."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import pytest

from perfsuite import PerfUsageError
from perfsuite._values import FailExpr
from perfsuite.ab import AbConfig
from perfsuite.cli import main


GOOD = {"base": "HEAD~1", "head": "HEAD", "pytest_args": (), "fail": FailExpr("median", 0.05)}
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def test_a_good_config_is_made_and_common_stand_ins_are_taken() -> None:
    cfg = AbConfig(**{**GOOD, "pytest_args": ["-k", "x"], "repo": "some/dir"})
    assert cfg.pytest_args == ("-k", "x")
    assert cfg.repo == Path("some/dir")
    assert AbConfig(**{**GOOD, "head": None, "stat": "min", "jobs": 1}).head is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"base": ""}, "`base` (BASE) = '': must be a revision"),
        ({"head": " "}, "`head` (HEAD) = ' ': must be a revision (e.g. 'HEAD'), or None"),
        ({"pytest_args": ("-k", 3)}, "`pytest_args` (-- <pytest args>) = ('-k', 3): must be a tuple of strings"),
        ({"fail": 0.05}, "`fail` (--fail) = 0.05: must be a FailExpr"),
        ({"fail": FailExpr("median", 0.0)}, "`fail` (--fail) = 'median:0%': the allowed slowdown must be a finite fraction > 0"),
        ({"fail": FailExpr("median", math.inf)}, "the allowed slowdown must be a finite fraction > 0"),
        ({"fail": FailExpr("p90", 0.05)}, "`fail` (--fail) = 'p90': the statistic per run must be one of ['min', 'median', 'mean']"),
        ({"stat": "max"}, "`stat` (--fail STAT:PCT) = 'max': the statistic per run must be one of"),
        ({"min_runs": 0}, "`min_runs` (--min-runs) = 0: must be a positive integer"),
        ({"min_runs": True}, "`min_runs` (--min-runs) = True: must be a positive integer"),
        ({"max_runs": 2.5}, "`max_runs` (--max-runs) = 2.5: must be a positive integer"),
        ({"min_runs": 9, "max_runs": 8}, "`max_runs` (--max-runs) = 8 must be at least `min_runs` (--min-runs) = 9"),
        ({"budget_s": 0}, "`budget_s` (--budget) = 0: must be a finite number of seconds > 0"),
        ({"budget_s": math.inf}, "`budget_s` (--budget) = inf: must be a finite number of seconds"),
        ({"run_timeout_s": math.nan}, "`run_timeout_s` = nan: must be a finite number of seconds > 0"),
        ({"level": 1.0}, "`level` (--level) = 1.0: must be a confidence level in [0.5, 1)"),
        ({"level": 0.4}, "`level` (--level) = 0.4: must be a confidence level in [0.5, 1)"),
        ({"test": "t"}, "`test` (--test) = 't': must be one of ['signed-rank', 'sign']"),
        ({"repo": 3}, "`repo` (--repo) = 3: must be a path"),
        ({"python": ""}, "`python` = '': must be the path of a Python interpreter"),
        ({"pin": "yes"}, "`pin` (--no-pin) = 'yes': must be True or False"),
        ({"jobs": 0}, "`jobs` (--jobs) = 0: must be a positive integer"),
        ({"jobs": 2, "sequential": True}, "`jobs` (--jobs) = 2: pairs run at once need a CPU each and pinning"),
        ({"jobs": 2, "pin": False}, "without `--sequential` or `--no-pin`"),
        ({"jobs": CPUS + 1}, f"must be at most the {CPUS} CPU(s) this process may use"),
        ({"fail_memory": -0.1}, "`fail_memory` (--fail-memory) = -0.1: must be a finite fraction >= 0"),
    ],
)  # fmt: skip
def test_bad_values_name_the_field_the_option_and_the_rule(change, message) -> None:
    with pytest.raises(PerfUsageError) as info:
        AbConfig(**{**GOOD, **change})
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)  # the API-misuse kind


def test_a_replaced_config_is_checked_again() -> None:
    """`perfsuite bisect` makes each step's config with `dataclasses.replace`."""
    cfg = AbConfig(**GOOD)
    assert dataclasses.replace(cfg, base="abc").base == "abc"
    with pytest.raises(PerfUsageError, match="`max_runs` .* must be at least `min_runs`"):
        dataclasses.replace(cfg, min_runs=40)


def test_every_command_gets_the_same_check(tmp_path, capsys) -> None:
    """`ab` and `bisect` exit 2, `ab-verdict` 128 (stops `git bisect run`), one line each."""
    bad = ["--min-runs", "9", "--max-runs", "8", "--repo", str(tmp_path)]
    rule = "`max_runs` (--max-runs) = 8 must be at least `min_runs` (--min-runs) = 9"
    assert main(["ab", "HEAD~1", *bad]) == 2
    assert f"perfsuite: error: {rule}" in capsys.readouterr().err
    assert main(["bisect", "HEAD~2", "HEAD", *bad]) == 2
    assert f"perfsuite: error: {rule}" in capsys.readouterr().err
    assert main(["ab-verdict", "HEAD~1", *bad]) == 128
    assert f"perfsuite ab-verdict: error: {rule}" in capsys.readouterr().out
