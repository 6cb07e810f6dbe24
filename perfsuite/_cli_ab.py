"""`perfsuite ab`, `perfsuite bisect` and `perfsuite ab-verdict`: revisions compared in
interleaved processes (`perfsuite.ab`), their arguments and their exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._cli_shared import _error, _fail, _print, _terminate_as_interrupt, _Terminated
from ._values import parse_level, parse_percent, parse_positive_int, parse_seconds


def _add_ab_parser(sub: Any) -> None:
    """`perfsuite ab BASE [HEAD] [options] -- <pytest args>`."""
    ab = sub.add_parser(
        "ab",
        help="compare two revisions in interleaved processes",
        description="Run the selected perf tests of BASE and HEAD in alternating processes "
        "(git worktrees) and give a verdict per measurement. Usage: perfsuite ab BASE [HEAD] "
        "[options] -- <pytest args>; the pytest args are relative to the repository root, "
        "where every run starts. Exit: 0 no regression, 1 regression, 2 error, "
        "3 inconclusive.",
    )
    ab.add_argument("base", metavar="BASE", help="base revision (branch, tag, commit)")
    ab.add_argument(
        "head",
        metavar="HEAD",
        nargs="?",
        default=None,
        help="head revision; default: the working tree as it is (uncommitted changes included)",
    )
    ab.add_argument(
        "--fail",
        type=_fail,
        default=None,
        metavar="EXPR",
        help="regression if HEAD is slower than BASE by more than EXPR with confidence "
        "(e.g. '5%%', or 'median:5%%' to force the per-run statistic). Default: '5%%'",
    )
    ab.add_argument(
        "--fail-memory",
        type=parse_percent,
        default=0.0,
        metavar="PCT",
        help="regression if HEAD's peak memory (exact sources) grew by more than PCT over "
        "BASE's; host RSS gets at least its calibrated tolerance. Default: 0",
    )
    ab.add_argument(
        "--min-runs",
        type=parse_positive_int,
        default=8,
        metavar="N",
        help="run pairs before the first verdict. Default: %(default)r",
    )
    ab.add_argument(
        "--max-runs",
        type=parse_positive_int,
        default=30,
        metavar="N",
        help="most run pairs; then undecided is inconclusive. Default: %(default)r",
    )
    ab.add_argument(
        "--budget",
        type=parse_seconds,
        default=900.0,
        metavar="SECONDS",
        help="wall-clock budget for all runs; no new pair starts once the next would exceed it (checked after --min-runs pairs). Default: %(default)r",
    )
    ab.add_argument(
        "--level",
        type=parse_level,
        default=0.99,
        help="two-sided confidence level of the interval. Default: %(default)r",
    )
    ab.add_argument(
        "--test",
        choices=["signed-rank", "sign"],
        default="signed-rank",
        help="paired interval over runs. Default: %(default)r",
    )
    ab.add_argument(
        "--repo",
        type=Path,
        default=Path.cwd(),
        metavar="PATH",
        help="the git repository. Default: the current directory",
    )
    ab.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the verdicts and per-run numbers as JSON",
    )
    ab.add_argument(
        "--markdown",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="also write a Markdown summary to PATH; without PATH, append it to "
        "$GITHUB_STEP_SUMMARY when set, else print it",
    )
    ab.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the two runs of a pair to one CPU (they still take turns)",
    )
    ab.add_argument(
        "--sequential",
        action="store_true",
        help="run the two runs of a pair one after the other instead of side by side (for "
        "workloads that cannot both hold the machine, e.g. a model that fills the GPU)",
    )
    ab.add_argument(
        "--jobs",
        "-j",
        type=parse_positive_int,
        default=1,
        metavar="N",
        help="run N pairs at once, each pinned to its own CPU from its start (at most the "
        "number of CPUs; not with --sequential or --no-pin). Default: %(default)r",
    )
    ab.add_argument(
        "--fail-counts-toolchain",
        action="store_true",
        help="an increase of a deterministic count is a regression even when BASE's and "
        "HEAD's toolchains (python, jax/jaxlib, torch, XLA flags) differ; otherwise such "
        "changes are labelled 'toolchain changed'",
    )
    ab.add_argument("--quiet", action="store_true", help="no progress display")
    ab.add_argument(
        "--profile",
        action="store_true",
        help="after the verdict, run each revision once more (in its own worktree) with every "
        "series profiled, and diff HEAD's profiles against BASE's for each regressed series "
        "(under .perf/profiles/ab/)",
    )


def _add_bisect_parsers(sub: Any) -> None:
    """Issue 16: `perfsuite bisect GOOD BAD` and `perfsuite ab-verdict GOOD`."""
    from .ab._bisect import add_arguments

    types = {"fail": _fail, "int": parse_positive_int, "seconds": parse_seconds}
    types["level"] = parse_level
    bis = sub.add_parser(
        "bisect",
        help="find the first commit whose perf tests are slower than GOOD's",
        description="Binary search over the first-parent commits GOOD..BAD, each compared "
        "with GOOD as `perfsuite ab` does (same / slower / unsure); commits that cannot be "
        "collected are skipped. Usage: perfsuite bisect GOOD BAD [options] -- <pytest args>. "
        "Exit: 0 culprit found, 3 not decidable or no culprit, 2 error.",
    )
    bis.add_argument("good", metavar="GOOD", help="a revision that is fast")
    bis.add_argument("bad", metavar="BAD", help="a later revision that is slower")
    add_arguments(bis, types=types)
    ver = sub.add_parser(
        "ab-verdict",
        help="the checked-out commit against GOOD, for `git bisect run`",
        description="Compare HEAD with GOOD as `perfsuite ab` does and exit as `git bisect "
        "run` reads it: 0 same (good), 1 slower (bad), 125 skip (not collectable, or unsure), "
        "128 error (stops the bisection). Usage: git bisect run perfsuite ab-verdict GOOD "
        "[options] -- <pytest args>.",
    )
    ver.add_argument("good", metavar="GOOD", help="the revision that is fast")
    add_arguments(ver, types=types)


def _bisect(args: argparse.Namespace, pytest_args: list[str]) -> int:
    from ._errors import PerfError
    from .ab import _bisect

    run = _bisect.run_bisect if args.command == "bisect" else _bisect.run_verdict
    abort = 2 if args.command == "bisect" else _bisect.VERDICT_ABORT
    try:
        with _terminate_as_interrupt():
            return run(args, pytest_args, _print)
    except _Terminated as exc:
        _error(f"terminated by {exc}; no verdict (its runs and worktrees were removed).")
    except KeyboardInterrupt:
        _error("interrupted; no verdict.")
    except PerfError as exc:
        _error(str(exc))
    return abort


def _profile_ab(cfg: Any, doc: dict[str, Any]) -> None:
    """Issue 16: `perfsuite ab --profile`; a failure to profile is a note, not the verdict."""
    from ._errors import AbError
    from .ab import profile_regressions

    try:
        with _terminate_as_interrupt():
            doc["profiles"] = profile_regressions(cfg, doc)
    except (AbError, KeyboardInterrupt) as exc:
        doc["profiles"] = [{"series": "(all)", "error": f"profiling stopped: {exc}"}]


def _ab(args: argparse.Namespace, pytest_args: list[str]) -> int:
    from . import ab
    from ._results import write_atomic

    # A bad combination of options is a `PerfUsageError`, printed by `main` (exit 2).
    cfg = ab.AbConfig.from_args(args, pytest_args, base=args.base, head=args.head)
    progress = ab.Progress(None if args.quiet else sys.stderr)
    try:
        with _terminate_as_interrupt():
            doc = ab.run_ab(cfg, progress=progress)
    except ab.AbError as exc:
        return _error(str(exc))
    except _Terminated as exc:
        return _error(f"terminated by {exc}; no verdict (its runs and worktrees were removed).")
    except KeyboardInterrupt:
        return _error("interrupted; no verdict.")
    if args.profile:
        _profile_ab(cfg, doc)
    _print(ab.render_text(doc))
    if doc.get("profiles"):
        _print(ab.render_profiles(doc["profiles"]))
    if args.json is not None:
        ab.write_json_report(args.json, doc)
    if args.markdown is not None:
        md = ab.render_markdown(doc)
        if doc.get("profiles"):  # issue 16: the top of each regressed series' diff
            md += "\n```\n" + ab.render_profiles(doc["profiles"]) + "\n```\n"
        summary = os.environ.get("GITHUB_STEP_SUMMARY", "")
        if args.markdown:
            write_atomic(Path(args.markdown), md)
        elif summary:
            with open(summary, "a") as fh:  # GitHub's step summary is appended to, by design
                fh.write(md)
        else:
            _print(md)
    return doc["exit_code"]
