"""`perfsuite calibrate`: its arguments (the command itself is `perfsuite._calibrate`)."""

from __future__ import annotations

import argparse
from typing import Any

from ._values import parse_positive_int, parse_seconds


def _add_calibrate_parser(sub: Any) -> None:
    """`perfsuite calibrate`: the gate's false-alarm rate and smallest caught slowdown here."""
    from ._calibrate import DEFAULT_SLOWDOWNS

    def factors(text: str) -> list[float]:
        try:
            return [float(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated factors such as 1.1,1.5,2, got {text!r}"
            ) from None

    cal = sub.add_parser(
        "calibrate",
        help="measure the stored-baseline gate's A/A false alarms and smallest caught slowdown",
        description="Save a throwaway baseline of the given perf tests, then run A/A sessions "
        "and sessions with every timed call made slower (1.1x, 1.25x, ...) against it, as "
        "`--perf-compare --perf-fail` would in CI; prints the rates with 95%% Wilson "
        "intervals (Markdown) and the smallest slowdown caught in 80%% of sessions. Usage: "
        "perfsuite calibrate [options] -- <pytest args>, or --builtin for the runner alone.",
    )
    cal.add_argument("--builtin", action="store_true", help="calibrate perfsuite's own workload")
    cal.add_argument("--aa", type=parse_positive_int, default=20, help="A/A sessions (20)")
    cal.add_argument(
        "--trials", type=parse_positive_int, default=10, help="sessions per slowdown (10)"
    )
    cal.add_argument(
        "--sessions", type=parse_positive_int, default=1, help="sessions in the baseline (1)"
    )
    cal.add_argument(
        "--slowdowns",
        type=factors,
        default=list(DEFAULT_SLOWDOWNS),
        help="factors to try, smallest first (1.1,1.25,1.5,2,3)",
    )
    cal.add_argument("--fail", default="5%", help="the --perf-fail expression judged (5%%)")
    cal.add_argument("--budget", type=parse_seconds, default=1800.0, help="seconds in all (1800)")
    cal.add_argument("--json", default=None, help="write the results document here")
    cal.add_argument("--markdown", default=None, help="write the Markdown table here")
