"""`perfsuite calibrate`: how far to trust each of perfsuite's gates on *this* runner.

Run before trusting a gate: the A/A false-alarm rate and how large a change is caught, each
rate with its 95% Wilson interval, in Markdown (progress on stderr, one line a trial).

- `perfsuite calibrate [options] -- <pytest args>` (or `--builtin`), `_gate`: the
  stored-baseline gate (`--perf-compare --perf-fail`) on the user's own perf tests, with a
  slowdown injected by the engine (`perfsuite._calibrate`); the smallest slowdown caught in
  80% of sessions within a budget.
- `perfsuite calibrate compare`, `_compare`: the in-run verdicts of `perf.compare`
  (`assert_speedup`, `assert_no_slower`) on work of known ratio.
- `perfsuite calibrate baseline`, `_baseline`: the stored-baseline gate on a workload of
  known cost, against baselines of several sizes, the raw rule beside the normalised one.
- `perfsuite calibrate ab`, `_ab`: `perfsuite ab` on a throwaway repository whose HEAD adds
  0%, 3%, 10% work, beside pytest-benchmark's compare rule.
- `perfsuite calibrate counts`, `_counts`: the exact (counts) gate: A/A and one more call.
- `perfsuite calibrate memory`, `_memory`: the host-RSS source's A/A spread against its
  calibrated tolerance.

`_rates` holds what they share: `Rate` (a count with its Wilson interval and table cell),
Markdown tables, the deadline, progress lines, atomic output. These replace the former
`scripts/calibrate_*.py`, which remain as wrappers with their documented flags.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from . import _ab, _baseline, _compare, _counts, _gate, _memory


#: `perfsuite calibrate SCENARIO`: the module that defines and runs each.
SCENARIOS = {
    "compare": _compare,
    "baseline": _baseline,
    "ab": _ab,
    "counts": _counts,
    "memory": _memory,
}


def _gate_defaults() -> dict[str, Any]:
    parser = argparse.ArgumentParser(add_help=False)
    _gate.add_arguments(parser)
    return vars(_gate.own_options(parser.parse_args([])))


_GATE_DEFAULTS = _gate_defaults()


def add_parser(sub: Any) -> None:
    """The `calibrate` subcommand: the gate's options, then one subcommand per scenario."""
    cal = sub.add_parser(
        "calibrate",
        usage="perfsuite calibrate [options] -- <pytest args> | --builtin\n"
        "       perfsuite calibrate SCENARIO [options]   (SCENARIO: " + ", ".join(SCENARIOS) + ")",
        help="measure a gate's A/A false alarms and the smallest change it catches, here",
        description="Without SCENARIO: save a throwaway baseline of the given perf tests, "
        "then run A/A sessions and sessions with every timed call made slower (1.1x, 1.25x, "
        "...) against it, as `--perf-compare --perf-fail` would in CI; prints the rates with "
        "95% Wilson intervals (Markdown) and the smallest slowdown caught in 80% of "
        "sessions. Usage: perfsuite calibrate [options] -- <pytest args>, or --builtin for "
        "the runner alone. With SCENARIO (its own options, see perfsuite calibrate SCENARIO "
        "--help): the other gates on workloads of known cost.",
    )
    _gate.add_arguments(cal)
    scenarios = cal.add_subparsers(
        dest="calibration", metavar="SCENARIO", required=False, prog="perfsuite calibrate"
    )
    for module in SCENARIOS.values():
        module.add_parser(scenarios)


def calibrate_command(args: Any, pytest_args: Sequence[str], write: Callable[[str], None]) -> int:
    """Run what `perfsuite calibrate ...` asked for; its exit code."""
    from .._errors import PerfUsageError

    if args.calibration is None:
        return _gate.run_gate(args, pytest_args, write)
    given = {k: v for k, v in vars(_gate.own_options(args)).items() if v != _GATE_DEFAULTS[k]}
    if given:
        raise PerfUsageError(
            f"options before SCENARIO are the stored-baseline gate's (`perfsuite calibrate "
            f"[options] -- <pytest args>`), not `{args.calibration}`'s: got "
            + ", ".join(f"--{k}" for k in given)
            + f"; put `{args.calibration}`'s options after it."
        )
    if pytest_args:
        raise PerfUsageError(
            f"`perfsuite calibrate {args.calibration}` takes no pytest arguments after `--` "
            f"(its workload is built in), got {list(pytest_args)!r}."
        )
    own = {k: v for k, v in vars(args).items() if not k.startswith(_gate.PREFIX)}
    own.pop("command", None)
    return SCENARIOS[args.calibration].run(argparse.Namespace(**own), write)
