"""Command-line options, marker keywords and the frozen config objects built from them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._errors import PerfUsageError
from ._settings import STATISTICS, Settings
from ._values import FailExpr as FailExpr
from ._values import MarkerKey, ProfileMode, parse_percent, words
from ._values import parse_fail as parse_fail
from ._values import parse_name as parse_name
from ._values import parse_path as parse_path
from ._values import parse_profile as parse_profile
from ._values import parse_progress_after as parse_progress_after
from ._values import parse_seconds as parse_seconds
from .instruments import instrument_names


if TYPE_CHECKING:
    from _pytest.config.argparsing import Parser


def add_options(parser: Parser) -> None:
    group = parser.getgroup("perf", "perfsuite: performance tests")
    group.addoption(
        "--perf",
        action="store_true",
        default=False,
        help="Run only tests marked `perf` (others are deselected) and measure them.",
    )
    group.addoption(
        "--perf-budget",
        type=parse_seconds,
        metavar="SECONDS",
        default=None,
        help="Seconds of timed rounds one comparison may spend before it must decide; "
        "undecided is 'inconclusive' (a failure). Default: 20 (5 with --perf-quick).",
    )
    group.addoption(
        "--perf-quick",
        action="store_true",
        default=False,
        help="Shorter rounds, warm-up and budget; same confidence level. Default: %(default)r",
    )
    group.addoption(
        "--perf-json",
        type=parse_path,
        metavar="PATH",
        default=None,
        help="Write the session's results here (atomically). Default: .perf/results-<time>.json",
    )
    group.addoption(
        "--perf-save",
        type=parse_name,
        metavar="NAME",
        default=None,
        help="Also store the results as one session of baseline NAME under "
        ".perf/<machine-id>/NNNN_NAME.json; saving NAME again adds a session (the newest 20 "
        "are kept, older ones deleted). With 5 or more sessions a compare estimates how much "
        "sessions differ; with fewer it uses a wide default band. An interrupted, "
        "failed-to-collect or empty session is never saved. Default: %(default)r",
    )
    group.addoption(
        "--perf-compare",
        metavar="NAME|PATH",
        default=None,
        help="Compare every measurement with this baseline (a saved name or a results file). "
        "Default: %(default)r",
    )
    group.addoption(
        "--perf-fail",
        type=parse_fail,
        metavar="EXPR",
        default=None,
        help="With --perf-compare: fail the session when a series is slower than the "
        "baseline by more than EXPR with confidence, e.g. '5%%' or 'min:5%%'. STAT (min, median, "
        "mean; median if omitted) is taken over each session's rounds, and the current "
        "session's number is judged against the spread of the baseline's sessions, "
        "relative to a machine-speed reference timed between the same rounds for CPU-bound "
        "series (the raw ratio is reported too). Default: %(default)r",
    )
    group.addoption(
        "--perf-fail-inconclusive",
        action="store_true",
        default=False,
        help="With --perf-fail: also fail the session when a series is slower than the limit "
        "by its estimate but within the between-session noise (inconclusive). "
        "Default: %(default)r",
    )
    group.addoption(
        "--perf-fail-memory",
        type=parse_percent,
        metavar="PCT",
        default=None,
        help="With --perf-compare: fail the session when a series' peak memory grew by more "
        "than PCT over the baseline's (exact sources; default 0 once the gate is armed by "
        "--perf-fail or this option). Inexact sources (host RSS) are allowed at least their "
        "calibrated tolerance (docs/calibration-memory.md). Default: %(default)r",
    )
    group.addoption(
        "--perf-fail-counts-toolchain",
        action="store_true",
        default=False,
        help="With --perf-compare and --perf-fail: an increase of a deterministic count fails "
        "even when the toolchain (python, jax/jaxlib, torch, XLA flags) differs from the "
        "baseline's; without it such changes are reported as 'toolchain changed'. "
        "Default: %(default)r",
    )
    group.addoption(
        "--perf-allow-cross-machine",
        action="store_true",
        default=False,
        help="Accept a baseline recorded on a different machine fingerprint. Default: %(default)r",
    )
    add_profile_option(group)
    add_benchmark_and_progress_options(group)


def add_benchmark_and_progress_options(group: Any) -> None:
    """Issue 13: `--perf-benchmark-fixture` (pytest-benchmark suites) and `--perf-progress`."""
    group.addoption(
        "--perf-benchmark-fixture",
        action="store_true",
        default=False,
        help="Provide perfsuite's `benchmark` fixture (pytest-benchmark's API, measured by "
        "perfsuite's engine under --perf, run once without it) even when pytest-benchmark's "
        "plugin is active; without this option perfsuite provides it only when that plugin is "
        "not active (not installed, or -p no:benchmark). Default: %(default)r",
    )
    group.addoption(
        "--perf-progress",
        type=parse_progress_after,
        metavar="SECONDS|off",
        default=5.0,
        help="A comparison still undecided after SECONDS says so on the terminal (rounds so "
        "far, current interval), again every SECONDS; not with -qq. Default: %(default)r",
    )


def add_profile_option(group: Any) -> None:
    """`--perf-profile` (issue 16): profiles of both sides of a comparison after its verdict."""
    group.addoption(
        "--perf-profile",
        type=parse_profile,
        metavar="WHEN",
        default=ProfileMode.FAILED.value,
        help="Profile both candidates of a comparison after its verdict (never inside timed "
        "rounds) and write the profiles and their diff under .perf/profiles/<test>/: "
        "'failed' after a failing or inconclusive assertion (and, after its test, a series "
        "slower than the --perf-compare baseline, profiled alone), 'all' after every "
        "assertion and every perf.measure, 'off' never. The marker's profile= overrides it. "
        "Default: %(default)r",
    )


@dataclass(frozen=True)
class PerfConfig:
    """The session's perf options, parsed and checked once (kept in `config.stash`)."""

    enabled: bool
    quick: bool
    budget_s: float | None
    json_path: Path | None
    save: str | None
    compare: str | None
    fail: FailExpr | None
    allow_cross_machine: bool
    results_dir: Path
    #: `--perf-fail-inconclusive`: an inconclusive baseline verdict fails the session.
    fail_inconclusive: bool = False
    #: `--perf-profile`: when to profile both sides of a comparison (a `ProfileMode`).
    profile: str = ProfileMode.FAILED.value
    #: `--perf-fail-memory`: allowed growth of peak memory (a fraction), or None (0, and a
    #: memory regression fails the session only with --perf-fail).
    fail_memory: float | None = None
    #: `--perf-fail-counts-toolchain`: count increases fail across a toolchain change too.
    fail_counts_toolchain: bool = False

    @classmethod
    def from_pytest_config(cls, config: pytest.Config) -> PerfConfig:
        opt = config.getoption
        cfg = cls(
            enabled=bool(opt("perf")),
            quick=bool(opt("perf_quick")),
            budget_s=opt("perf_budget"),
            json_path=opt("perf_json"),
            save=opt("perf_save"),
            compare=opt("perf_compare"),
            fail=opt("perf_fail"),
            allow_cross_machine=bool(opt("perf_allow_cross_machine")),
            results_dir=Path(config.rootpath) / ".perf",
            fail_inconclusive=bool(opt("perf_fail_inconclusive")),
            profile=opt("perf_profile"),
            fail_memory=opt("perf_fail_memory"),
            fail_counts_toolchain=bool(opt("perf_fail_counts_toolchain")),
        )
        if not cfg.enabled:
            needs = [
                flag
                for flag, value in (
                    ("--perf-save", cfg.save),
                    ("--perf-compare", cfg.compare),
                    ("--perf-fail", cfg.fail),
                    ("--perf-json", cfg.json_path),
                    ("--perf-fail-inconclusive", cfg.fail_inconclusive or None),
                    ("--perf-fail-memory", cfg.fail_memory),
                    ("--perf-fail-counts-toolchain", cfg.fail_counts_toolchain or None),
                )
                if value is not None
            ]
            if needs:
                raise pytest.UsageError(f"{', '.join(needs)} only make sense with --perf.")
        if cfg.fail is not None and cfg.compare is None:
            raise pytest.UsageError(
                "--perf-fail needs a baseline to compare with: add --perf-compare=NAME|PATH."
            )
        if cfg.fail_memory is not None and cfg.compare is None:
            raise pytest.UsageError(
                "--perf-fail-memory needs a baseline to compare with: add --perf-compare=NAME|PATH."
            )
        if cfg.fail_inconclusive and cfg.fail is None:
            raise pytest.UsageError(
                "--perf-fail-inconclusive needs a limit to judge against: add --perf-fail=EXPR "
                "(e.g. 5%) and --perf-compare=NAME|PATH."
            )
        return cfg

    def settings(self, marker: PerfMarkerOptions) -> Settings:
        overrides: dict[str, Any] = {}
        if self.budget_s is not None:
            overrides["budget_s"] = self.budget_s
        if marker.budget is not None:
            overrides["budget_s"] = marker.budget
        if marker.rounds is not None:
            overrides["min_rounds"] = marker.rounds
        if marker.instrument is not None:
            overrides["instrument"] = marker.instrument
        if marker.statistic is not None:
            overrides["statistic"] = marker.statistic
        return Settings.quick(**overrides) if self.quick else Settings(**overrides)


@dataclass(frozen=True)
class PerfMarkerOptions:
    """Keywords of `@pytest.mark.perf(budget=..., rounds=..., instrument=..., statistic=...)`."""

    budget: float | None = None
    """Seconds of timed rounds per comparison in this test (overrides --perf-budget)."""
    rounds: int | None = None
    """Rounds before the first look at the data (the fewest any measurement runs)."""
    instrument: str | None = None
    """Force an instrument: one of `perfsuite.instruments.InstrumentName`."""
    statistic: str | None = None
    """Per-round sample of the test's measurements: `mean` (default) or `median`."""
    profile: str | None = None
    """When to profile this test's comparisons (`failed`, `all`, `off`; overrides --perf-profile)."""

    @classmethod
    def from_pytest_item(cls, item: pytest.Item) -> PerfMarkerOptions:
        marker = item.get_closest_marker("perf")
        if marker is None:
            return cls()
        if marker.args:
            raise PerfUsageError(
                f"perf marker takes keyword arguments only (budget, rounds, instrument, "
                f"statistic, profile), "
                f"got positional {marker.args!r}."
            )
        known = set(words(MarkerKey))
        unknown = sorted(set(marker.kwargs) - known)
        if unknown:
            raise PerfUsageError(
                f"perf marker got unknown keyword argument(s) {unknown}; known: {sorted(known)}."
            )
        budget = marker.kwargs.get("budget")
        if budget is not None and not (
            isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0
        ):
            raise PerfUsageError(
                f"perf marker `budget` must be a positive number of seconds, got {budget!r}."
            )
        rounds = marker.kwargs.get("rounds")
        if rounds is not None and not (
            isinstance(rounds, int) and not isinstance(rounds, bool) and rounds >= 2
        ):
            raise PerfUsageError(f"perf marker `rounds` must be an integer >= 2, got {rounds!r}.")
        instrument = marker.kwargs.get("instrument")
        if instrument is not None and instrument not in instrument_names():
            raise PerfUsageError(
                f"perf marker `instrument` must be one of {instrument_names()}, got {instrument!r}."
            )
        statistic = marker.kwargs.get("statistic")
        if statistic is not None and statistic not in STATISTICS:
            raise PerfUsageError(
                f"perf marker `statistic` must be one of {list(STATISTICS)}, got {statistic!r}."
            )
        profile = marker.kwargs.get("profile")
        if profile is not None and profile not in words(ProfileMode):
            raise PerfUsageError(
                f"perf marker `profile` must be one of {words(ProfileMode)}, got {profile!r}."
            )
        return cls(
            budget=budget,
            rounds=rounds,
            instrument=instrument,
            statistic=statistic,
            profile=profile,
        )
