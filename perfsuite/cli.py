"""The `perfsuite` command: `ab`, `bisect`, `ab-verdict`, `report` and `export-asv`.

Exit codes of `perfsuite ab`: 0 no regression, 1 regression, 2 error, 3 inconclusive.
`perfsuite bisect`: 0 culprit found, 3 not decidable, 2 error; `perfsuite ab-verdict` (for
`git bisect run`): 0 good, 1 bad, 125 skip, 128 error (see `perfsuite.ab._bisect`).
The other commands return 0 on success and 2 on an error; every error names the argument
and the rule it broke.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ._values import (
    FailExpr,
    parse_fail,
    parse_level,
    parse_percent,
    parse_positive_int,
    parse_seconds,
)


def _fail(text: str) -> tuple[FailExpr, bool]:
    """`--fail EXPR`, and whether EXPR named the per-run statistic (`median:5%`)."""
    return parse_fail(text), ":" in text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perfsuite", description="Performance as a tested property: A/B runs and reports."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
    _add_bisect_parsers(sub)
    _add_calibrate_parser(sub)

    rep = sub.add_parser(
        "report",
        help="render a results file as a table (or Markdown) with plots",
        description="Table per test (median, per unit, ratio with interval, verdict); "
        "PNG plots of scaling fits and per-step histograms next to the results.",
    )
    rep.add_argument("results", type=Path, metavar="RESULTS.json")
    rep.add_argument("--markdown", action="store_true", help="Markdown instead of text")
    rep.add_argument(
        "--output",
        "-o",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the report here (atomically) instead of stdout",
    )
    rep.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    rep.add_argument(
        "--plots-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the PNGs go. Default: next to RESULTS.json",
    )

    exp = sub.add_parser(
        "export-asv",
        help="write perfsuite results as asv results",
        description="Write RESULTS.json as asv results (results/<machine>/machine.json and "
        "<commit[:8]>-<env>.json), so the measurements join the asv history.",
    )
    exp.add_argument("results", type=Path, metavar="RESULTS.json")
    exp.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="asv results dir. Default: results_dir of ./asv.conf.json, else .asv/results",
    )
    exp.add_argument(
        "--config",
        type=Path,
        default=Path("asv.conf.json"),
        metavar="PATH",
        help="asv.conf.json to read results_dir from. Default: %(default)s",
    )
    exp.add_argument(
        "--machine",
        default=None,
        metavar="NAME",
        help="asv machine name. Default: from the fingerprint",
    )
    exp.add_argument(
        "--env-name",
        default=None,
        metavar="NAME",
        help="asv environment name. Default: perfsuite-py<version>",
    )
    return parser


def _add_calibrate_parser(sub: Any) -> None:
    """`perfsuite calibrate [SCENARIO]`: defined by the subpackage `perfsuite.calibrate`."""
    from .calibrate import add_parser

    add_parser(sub)


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


def _split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def _error(message: str) -> int:
    print(f"perfsuite: error: {message}", file=sys.stderr)
    return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured)
        pass


def _print(text: str) -> None:
    """Print to stdout; a reader that stopped reading (`| head`) is not an error.

    The rest of the command (writing `--json`, the exit code) goes on as if it had read all.
    """
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `perfsuite` console script. Returns the exit code."""
    from ._errors import PerfError

    try:
        return _main(argv)
    except PerfError as exc:  # the whole family, once: one line naming what is wrong
        return _error(str(exc))
    except BrokenPipeError:  # anything else written to a closed pipe (e.g. stderr | head)
        _silence_stdout()
        return 2


def _main(argv: Sequence[str] | None) -> int:
    own, rest = _split(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        args = parser.parse_args(own)
    except SystemExit as exc:  # argparse printed the message (naming the argument)
        if exc.code not in (0, None) and own[:1] == ["ab-verdict"]:
            return 128  # under `git bisect run`, 2 would read as "bad": 128 stops it
        return 2 if exc.code not in (0, None) else 0
    except BrokenPipeError:  # `perfsuite --help | head`
        _silence_stdout()
        return 0
    if args.command in ("bisect", "ab-verdict"):
        return _bisect(args, rest)
    if args.command == "calibrate":
        from .calibrate import calibrate_command

        return calibrate_command(args, rest, _print)
    if args.command != "ab" and rest:
        return _error(f"`{args.command}` takes no pytest arguments after `--`, got {rest!r}.")
    if args.command == "ab":
        return _ab(args, rest)
    if args.command == "report":
        return _report(args)
    return _export_asv(args)


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that the same `finally` blocks clean up."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into `_Terminated` while `perfsuite ab` runs.

    By default these signals end the process at once: the running pytest processes would be
    orphaned (blocked on their turns) and both git worktrees left registered. Raised as an
    exception instead, they unwind through the code that kills the runs and removes the
    worktrees, exactly as Ctrl-C does. A second one during that clean-up is ignored.
    """
    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])

    def handler(signum: int, frame: Any) -> None:
        for sig in wanted:
            signal.signal(sig, signal.SIG_IGN)
        raise _Terminated(signal.Signals(signum).name)

    try:
        previous = {sig: signal.signal(sig, handler) for sig in wanted}
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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


def _report(args: argparse.Namespace) -> int:
    from . import _report as report
    from ._results import SchemaError, load_document, write_atomic

    try:
        doc = load_document(args.results)
    except SchemaError as exc:
        return _error(f"`RESULTS.json`: {exc}")
    plots: dict[str, list[Path]] = {}
    if not args.no_plots:
        from ._plots import write_plots

        folder = args.plots_dir or args.results.parent
        plots = write_plots(doc, folder, stem=args.results.stem)
    relative_to = (args.output or args.results).parent
    if args.markdown:
        text = report.markdown_report(doc, plots=plots, relative_to=relative_to)
    else:
        text = report.text_report(doc, plots=plots)
    if args.output is not None:
        write_atomic(args.output, text + "\n")
    else:
        _print(text)
    return 0


def _export_asv(args: argparse.Namespace) -> int:
    from ._asv_export import AsvExportError, export

    try:
        written = export(
            args.results,
            results_dir=args.results_dir,
            config=args.config,
            machine=args.machine,
            env_name=args.env_name,
        )
    except AsvExportError as exc:
        return _error(str(exc))
    for path in written:
        _print(f"perfsuite export-asv: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
