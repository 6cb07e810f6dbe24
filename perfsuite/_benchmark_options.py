"""Which `benchmark` fixture a session gets, and pytest-benchmark's options and marker.

The precedence:

1. `--perf-benchmark-fixture`: perfsuite's, always. When pytest-benchmark's plugin is
   installed it is unregistered for the session (as `-p no:benchmark` would), so it neither
   defines the fixture nor rejects ours; its options stay accepted and perfsuite reads them.
2. pytest-benchmark's plugin active (installed, not `-p no:benchmark`): pytest-benchmark's.
   Under `--perf` its tests are then deselected like every test not marked `perf`.
3. Otherwise (not installed, or `-p no:benchmark`): perfsuite's, and perfsuite accepts
   pytest-benchmark's command-line options (`add_compat_options`), so a command line written
   for it still parses.

Kept apart from the fixture (`_benchmark_fixture`) because the plugin calls these before
any test exists: at `pytest_load_initial_conftests`, at configure and at collection.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
from typing import Any

import pytest

from ._errors import PerfUsageError


#: pytest-benchmark's own plugin module (its entry point is named `benchmark`).
PYTEST_BENCHMARK_MODULE = "pytest_benchmark.plugin"

#: Keywords of `@pytest.mark.benchmark(...)`, as pytest-benchmark accepts them. perfsuite
#: uses `group`, `min_rounds` (rounds before more are added) and `max_time` (seconds of
#: rounds after them, as `perf.measure`'s `measure_s`); the others are accepted and have no
#: effect (perfsuite calibrates its own rounds, keeps the collector on and picks its timer).
MARKER_KEYS = (
    "max_time",
    "min_rounds",
    "min_time",
    "precision",
    "confidence",
    "timer",
    "group",
    "disable_gc",
    "warmup",
    "warmup_iterations",
    "calibration_precision",
    "cprofile",
)

#: pytest-benchmark's command-line options, `(flag, how argparse reads it)`, accepted while
#: its plugin is not active. `USED_OPTIONS` have an effect under perfsuite's fixture; any
#: other one given is named in one line at the end of the run (accepted, no effect).
PYTEST_BENCHMARK_OPTIONS: tuple[tuple[str, str], ...] = (
    ("--benchmark-min-time", "value"),
    ("--benchmark-max-time", "seconds"),
    ("--benchmark-min-rounds", "int"),
    ("--benchmark-precision", "value"),
    ("--benchmark-confidence", "value"),
    ("--benchmark-timer", "value"),
    ("--benchmark-calibration-precision", "value"),
    ("--benchmark-warmup", "optional"),
    ("--benchmark-warmup-iterations", "value"),
    ("--benchmark-disable-gc", "flag"),
    ("--benchmark-skip", "flag"),
    ("--benchmark-disable", "flag"),
    ("--benchmark-enable", "flag"),
    ("--benchmark-only", "flag"),
    ("--benchmark-save", "value"),
    ("--benchmark-autosave", "flag"),
    ("--benchmark-save-data", "flag"),
    ("--benchmark-json", "path"),
    ("--benchmark-compare", "optional"),
    ("--benchmark-compare-fail", "plus"),
    ("--benchmark-cprofile", "value"),
    ("--benchmark-cprofile-loops", "value"),
    ("--benchmark-cprofile-top", "value"),
    ("--benchmark-cprofile-dump", "append-optional"),
    ("--benchmark-storage", "value"),
    ("--benchmark-netrc", "optional"),
    ("--benchmark-verbose", "flag"),
    ("--benchmark-quiet", "flag"),
    ("--benchmark-sort", "value"),
    ("--benchmark-group-by", "value"),
    ("--benchmark-columns", "value"),
    ("--benchmark-name", "value"),
    ("--benchmark-time-unit", "value"),
    ("--benchmark-histogram", "append-optional"),
)

USED_OPTIONS = frozenset(
    {
        "--benchmark-disable",
        "--benchmark-enable",
        "--benchmark-skip",
        "--benchmark-only",
        "--benchmark-json",
        "--benchmark-min-rounds",
        "--benchmark-max-time",
    }
)


def pytest_benchmark_plugin(pluginmanager: Any) -> Any:
    """pytest-benchmark's plugin module where it is registered (by any name), else None."""
    for plugin in pluginmanager.get_plugins():
        if getattr(plugin, "__name__", None) == PYTEST_BENCHMARK_MODULE:
            return plugin
    return None


def before_conftests(early_config: Any) -> None:
    """At `pytest_load_initial_conftests`: take pytest-benchmark's place when asked to."""
    pm = early_config.pluginmanager
    forced = getattr(early_config.known_args_namespace, "perf_benchmark_fixture", False)
    plugin = pytest_benchmark_plugin(pm)
    if forced and plugin is not None:
        # Its options were added when it registered and stay; its hooks and fixture go.
        pm.unregister(plugin)
        early_config.stash[_took_over_key] = True


def after_conftests(early_config: Any, parser: Any) -> None:
    """After the initial conftests: accept pytest-benchmark's options where nobody defines them."""
    if pytest_benchmark_plugin(early_config.pluginmanager) is not None:
        return
    if early_config.stash.get(_took_over_key, False):
        return  # its options are still in the parser
    add_compat_options(parser)


def add_compat_options(parser: Any) -> None:
    """pytest-benchmark's options (same names and destinations), for its plugin's absence."""
    from ._values import parse_path, parse_positive_int, parse_seconds

    group = parser.getgroup(
        "benchmark", "pytest-benchmark options, accepted by perfsuite's `benchmark` fixture"
    )
    for flag, how in PYTEST_BENCHMARK_OPTIONS:
        used = flag in USED_OPTIONS
        note = "used by perfsuite" if used else "accepted, no effect under perfsuite"
        kwargs: dict[str, Any] = {"help": f"pytest-benchmark's option ({note}; README)."}
        if how == "flag":
            kwargs.update(action="store_true", default=False)
        elif how == "optional":
            kwargs.update(nargs="?", const=True, default=None)
        elif how == "append-optional":
            kwargs.update(action="append", nargs="?", const=True, default=[])
        elif how == "plus":
            kwargs.update(nargs="+", default=None)
        elif how == "int":
            kwargs.update(type=parse_positive_int, default=None, metavar="NUM")
        elif how == "seconds":
            kwargs.update(type=parse_seconds, default=None, metavar="SECONDS")
        elif how == "path":
            kwargs.update(type=parse_path, default=None, metavar="PATH")
        else:
            kwargs.update(default=None)
        group.addoption(flag, **kwargs)


def wanted(config: pytest.Config) -> bool:
    """Whether perfsuite provides the `benchmark` fixture in this session (see the top)."""
    if config.getoption("perf_benchmark_fixture", False):
        return True
    return pytest_benchmark_plugin(config.pluginmanager) is None


def given_options(config: pytest.Config) -> list[str]:
    """pytest-benchmark flags given on the command line, `PYTEST_ADDOPTS` or ini `addopts`."""
    words: list[str] = list(config.invocation_params.args)
    words += shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    with contextlib.suppress(ValueError, KeyError):
        words += list(config.getini("addopts"))
    flags = [str(w).split("=", 1)[0] for w in words if str(w).startswith("--benchmark-")]
    return list(dict.fromkeys(flags))


_took_over_key = pytest.StashKey[bool]()


def deselected_note(deselected: list[pytest.Item]) -> str | None:
    """Under --perf with pytest-benchmark's plugin active: say that its tests were left out."""
    n = sum(1 for item in deselected if "benchmark" in getattr(item, "fixturenames", ()))
    if not n:
        return None
    return (
        f"{n} tests use pytest-benchmark's `benchmark` fixture and were deselected; "
        "--perf-benchmark-fixture measures them with perfsuite."
    )


# ----------------------------------------------------------------------- the marker


def marker_options(item: pytest.Item) -> dict[str, Any]:
    """`@pytest.mark.benchmark(...)` keywords, checked as pytest-benchmark checks them."""
    marker = item.get_closest_marker("benchmark")
    if marker is None:
        return {}
    if marker.args:
        raise PerfUsageError(
            f"benchmark marker takes keyword arguments only, got positional {marker.args!r}."
        )
    unknown = sorted(set(marker.kwargs) - set(MARKER_KEYS))
    if unknown:
        raise PerfUsageError(
            f"benchmark marker got unknown keyword argument(s) {unknown}; known: "
            f"{sorted(MARKER_KEYS)}."
        )
    opts = dict(marker.kwargs)
    group = opts.get("group")
    if group is not None and not isinstance(group, str):
        raise PerfUsageError(f"benchmark marker `group` must be a string, got {group!r}.")
    rounds = opts.get("min_rounds")
    if rounds is not None and not (
        isinstance(rounds, int) and not isinstance(rounds, bool) and rounds >= 1
    ):
        raise PerfUsageError(
            f"benchmark marker `min_rounds` must be an integer >= 1, got {rounds!r}."
        )
    max_time = opts.get("max_time")
    if max_time is not None and not (
        isinstance(max_time, (int, float)) and math.isfinite(max_time) and max_time > 0
    ):
        raise PerfUsageError(
            f"benchmark marker `max_time` must be a positive number of seconds, got {max_time!r}."
        )
    return opts


# ----------------------------------------------------------------------- the fixture
