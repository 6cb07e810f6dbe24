"""The `perfsuite` command: `ab`, `bisect`, `ab-verdict`, `report` and `export-asv`.

Exit codes of `perfsuite ab`: 0 no regression, 1 regression, 2 error, 3 inconclusive.
`perfsuite bisect`: 0 culprit found, 3 not decidable, 2 error; `perfsuite ab-verdict` (for
`git bisect run`): 0 good, 1 bad, 125 skip, 128 error (see `perfsuite.ab._bisect`).
The other commands return 0 on success and 2 on an error; every error names the argument
and the rule it broke.

One module per subcommand group: `_cli_ab` (`ab`, `bisect`, `ab-verdict`), `_cli_report`
(`report`, `export-asv`) and the subpackage `perfsuite.calibrate`, with `_cli_shared` for
what they share; this module builds the parser and dispatches.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ._cli_ab import _ab, _add_ab_parser, _add_bisect_parsers, _bisect
from ._cli_report import _add_report_parsers, _export_asv, _report
from ._cli_shared import _error, _print, _silence_stdout, _split
from ._values import FailExpr as FailExpr
from ._values import parse_fail as parse_fail
from ._values import parse_level as parse_level
from ._values import parse_percent as parse_percent
from ._values import parse_positive_int as parse_positive_int
from ._values import parse_seconds as parse_seconds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perfsuite", description="Performance as a tested property: A/B runs and reports."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _add_ab_parser(sub)
    _add_bisect_parsers(sub)
    _add_calibrate_parser(sub)
    _add_report_parsers(sub)
    return parser


def _add_calibrate_parser(sub: Any) -> None:
    """`perfsuite calibrate [SCENARIO]`: defined by the subpackage `perfsuite.calibrate`."""
    from .calibrate import add_parser

    add_parser(sub)


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


if __name__ == "__main__":
    sys.exit(main())
