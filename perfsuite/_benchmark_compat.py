"""pytest-benchmark suites under perfsuite (issue 13): a compatible `benchmark` fixture.

Which `benchmark` fixture a session gets (the precedence):

1. `--perf-benchmark-fixture`: perfsuite's, always. When pytest-benchmark's plugin is
   installed it is unregistered for the session (as `-p no:benchmark` would), so it neither
   defines the fixture nor rejects ours; its options stay accepted and perfsuite reads them.
2. pytest-benchmark's plugin active (installed, not `-p no:benchmark`): pytest-benchmark's.
   Under `--perf` its tests are then deselected like every test not marked `perf`.
3. Otherwise (not installed, or `-p no:benchmark`): perfsuite's, and perfsuite accepts
   pytest-benchmark's command-line options (`add_compat_options`), so a command line written
   for it still parses.

perfsuite's fixture, under `--perf`, measures with perfsuite's engine: `benchmark(fn, *args,
**kwargs)` is `perf.measure` of `fn(*args, **kwargs)` (first call kept apart, warm-up, the
instrument chosen from the output, i.e. the device sync, calibrated rounds), named
`benchmark`; `benchmark.pedantic(...)` runs exactly the rounds and iterations asked for (a
setup before each round, untimed), after one first call kept apart. Both are results of
kind `measure` in perfsuite's JSON with a `benchmark` entry (group, name, fullname, params,
extra_info, mode), so baselines, the report, asv export and `perfsuite ab` see them as any
`perf.measure`. Tests using the fixture are selected by `--perf` without a `perf` marker.
Without `--perf` (or with `--benchmark-disable`) `fn` runs once and its result is returned,
as pytest-benchmark's `--benchmark-disable` does.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import json
import math
import os
import shlex
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ._errors import PerfUsageError


#: pytest-benchmark's own plugin module (its entry point is named `benchmark`).
PYTEST_BENCHMARK_MODULE = "pytest_benchmark.plugin"

#: Measurement name of a benchmark in perfsuite's results: the series is `<test id>::benchmark`.
SERIES_NAME = "benchmark"

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


class BenchmarkStats:
    """pytest-benchmark's statistics of one benchmark (`benchmark.stats`, and its JSON):
    per-call seconds of each round, with its quartiles as pytest-benchmark computes them."""

    fields = (
        "min",
        "max",
        "mean",
        "stddev",
        "rounds",
        "median",
        "iqr",
        "q1",
        "q3",
        "iqr_outliers",
        "stddev_outliers",
        "outliers",
        "ld15iqr",
        "hd15iqr",
        "ops",
        "total",
    )

    def __init__(self, data: list[float], iterations: int):
        if not data:
            raise PerfUsageError("a benchmark's statistics need at least one round.")
        self.data = list(data)
        self.iterations = iterations
        d = sorted(self.data)
        n = len(d)
        self.rounds = n
        self.min, self.max = d[0], d[-1]
        self.total = math.fsum(d)
        self.mean = statistics.fmean(d)
        self.stddev = statistics.stdev(d) if n > 1 else 0.0
        self.median = statistics.median(d)
        self.q1, self.q3 = _quartiles(d)
        self.iqr = self.q3 - self.q1
        lo, hi = self.q1 - 1.5 * self.iqr, self.q3 + 1.5 * self.iqr
        self.iqr_outliers = sum(1 for v in d if v < lo or v > hi)
        self.stddev_outliers = sum(
            1 for v in d if v < self.mean - self.stddev or v > self.mean + self.stddev
        )
        self.outliers = f"{self.stddev_outliers};{self.iqr_outliers}"
        self.ld15iqr = d[0] if n == 1 else d[bisect.bisect_left(d, lo)]
        self.hd15iqr = d[0] if n == 1 else d[bisect.bisect_right(d, hi) - 1]
        self.ops = n / self.total if self.total else 0

    @property
    def stats(self) -> BenchmarkStats:
        # pytest-benchmark's `benchmark.stats.stats.mean` reads through its metadata object.
        return self

    def __getitem__(self, key: str) -> Any:
        if key not in self.fields and key != "iterations":
            raise KeyError(f"{key!r} is not a benchmark statistic; known: {list(self.fields)}.")
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        return {**{f: getattr(self, f) for f in self.fields}, "iterations": self.iterations}


def _quartiles(d: list[float]) -> tuple[float, float]:
    """Q1 and Q3 as pytest-benchmark computes them (Wikipedia's methods 3 and 2)."""
    n = len(d)
    if n == 1:
        return d[0], d[0]
    if n % 2:
        k, q = n // 4, n % 4
        if q == 1:
            return 0.25 * d[k - 1] + 0.75 * d[k], 0.75 * d[3 * k] + 0.25 * d[3 * k + 1]
        return 0.75 * d[k] + 0.25 * d[k + 1], 0.25 * d[3 * k + 1] + 0.75 * d[3 * k + 2]
    return statistics.median(d[: n // 2]), statistics.median(d[n // 2 :])


def _json_or_repr(value: Any) -> Any:
    """A parameter as JSON keeps it, or its `repr` (parameters can be any object)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return value


class BenchmarkFixture:
    """perfsuite's `benchmark` fixture: pytest-benchmark's documented API (see the module).

    `perf` is the test's measurement API under `--perf` (None: run once, not measured).
    """

    def __init__(self, node: pytest.Item, group: str | None, perf: Any):
        self.name = node.name
        self.fullname = node.nodeid
        callspec = getattr(node, "callspec", None)
        self.param = callspec.id if callspec is not None else None
        self.params = (
            {k: _json_or_repr(v) for k, v in callspec.params.items()}
            if callspec is not None
            else None
        )
        self.group = group
        #: Anything the test adds (JSON values): stored with the measurement in the results.
        self.extra_info: dict[str, Any] = {}
        self.disabled = perf is None
        self.skipped = False
        #: Filled in by the measurement (`BenchmarkStats`), None until then or when disabled.
        self.stats: BenchmarkStats | None = None
        self._perf = perf
        self._mode: str | None = None
        self._pedantic: dict[str, Any] | None = None

    @property
    def enabled(self) -> bool:
        return not self.disabled

    def _claim(self, mode: str) -> None:
        if self._mode is not None:
            raise PerfUsageError(
                f"{self.fullname}: the `benchmark` fixture can only be used once per test; it "
                f"was already used in {self._mode} mode (as in pytest-benchmark). Parametrize "
                "the test, or use `perf.measure`/`perf.compare` for several measurements."
            )
        self._mode = mode

    def __call__(self, function_to_benchmark: Callable[..., Any], *args: Any, **kwargs: Any):
        """Measure `function_to_benchmark(*args, **kwargs)`; returns what it returns."""
        self._claim("benchmark(...)")
        if not callable(function_to_benchmark):
            raise PerfUsageError(
                f"`benchmark(fn, ...)`: `fn` must be callable, got {function_to_benchmark!r}."
            )
        if self._perf is None:
            return function_to_benchmark(*args, **kwargs)
        # A partial adds no Python frame of its own to each timed call.
        call = functools.partial(function_to_benchmark, *args, **kwargs)
        m = self._perf.measure(call, name=SERIES_NAME)
        self._attach(self._perf.sources[-1][0])
        self.stats = BenchmarkStats(m.candidate.samples, m.candidate.iterations)
        # As pytest-benchmark does: one more call, untimed, for the result.
        return function_to_benchmark(*args, **kwargs)

    def pedantic(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        setup: Callable[[], Any] | None = None,
        teardown: Callable[..., Any] | None = None,
        rounds: int = 1,
        warmup_rounds: int = 0,
        iterations: int = 1,
    ):
        """`rounds` timed rounds of `iterations` calls each, after `warmup_rounds` untimed.

        `setup()` runs before every round, untimed; when it returns `(args, kwargs)` those
        are the call's arguments (then `args`/`kwargs` must be empty). `teardown(*args,
        **kwargs)` runs after every round, untimed. Under `--perf` the first call is kept apart
        (`first_call_s`: it holds the compilation): it is the first call of the first warm-up
        round, or, with `warmup_rounds=0`, one call more than pytest-benchmark makes, before
        the timed rounds. Returns the last timed call's result.
        """
        self._claim("benchmark.pedantic(...)")
        if not callable(target):
            raise PerfUsageError(
                f"`benchmark.pedantic`: `target` must be callable, got {target!r}."
            )
        kwargs = {} if kwargs is None else kwargs
        for arg, value, low in (("iterations", iterations, 1), ("rounds", rounds, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise PerfUsageError(
                    f"`benchmark.pedantic`: `{arg}` must be a positive int, got {value!r}."
                )
        if (
            not isinstance(warmup_rounds, int)
            or isinstance(warmup_rounds, bool)
            or warmup_rounds < 0
        ):
            raise PerfUsageError(
                f"`benchmark.pedantic`: `warmup_rounds` must be an int >= 0, got {warmup_rounds!r}."
            )
        if iterations > 1 and setup is not None:
            raise PerfUsageError(
                "`benchmark.pedantic`: can't use more than 1 `iterations` with a `setup` "
                f"function (got iterations={iterations}): setup runs once per round, so every "
                "iteration after the first would reuse what the first consumed."
            )
        make = _arguments(tuple(args), dict(kwargs), setup)
        if self._perf is None:
            a, kw = make()
            return target(*a, **kw)
        self._pedantic = {
            "rounds": rounds,
            "warmup_rounds": warmup_rounds,
            "iterations": iterations,
            "setup": setup is not None,
            "teardown": teardown is not None,
        }
        result, cand = _pedantic_rounds(
            self._perf, target, make, teardown, rounds, warmup_rounds, iterations
        )
        self._attach(self._perf.sources[-1][0])
        self.stats = BenchmarkStats(cand.samples, iterations)
        return result

    def _attach(self, record: dict[str, Any]) -> None:
        # Serialised when the results are written, so extra_info set after the call counts.
        record["benchmark"] = _Info(self)

    def weave(self, *args: Any, **kwargs: Any):
        raise PerfUsageError(
            "`benchmark.weave`/`benchmark.patch` (aspectlib) are not supported by perfsuite's "
            "`benchmark` fixture: call `benchmark(fn, ...)` on the function instead."
        )

    patch = weave

    def check_extra_info(self) -> None:
        """At teardown: `extra_info` must be JSON (it is written into the results)."""
        if not isinstance(self.extra_info, dict):
            raise PerfUsageError(
                f"{self.fullname}: `benchmark.extra_info` must be a dict, got "
                f"{type(self.extra_info).__name__}."
            )
        for key, value in list(self.extra_info.items()):
            try:
                json.dumps({key: value})
            except (TypeError, ValueError) as exc:
                # Left out, so that the session's results can still be written.
                del self.extra_info[key]
                raise PerfUsageError(
                    f"{self.fullname}: `benchmark.extra_info[{key!r}]` must be a JSON value "
                    f"(str, number, bool, None, list, dict with str keys), got {value!r}: "
                    f"{exc}; it is left out of the results."
                ) from None


class _Info:
    """The `benchmark` entry of a measurement, read when the results are serialised."""

    def __init__(self, fixture: BenchmarkFixture):
        self._f = fixture

    def to_json(self) -> dict[str, Any]:
        f = self._f
        return {
            "name": f.name,
            "fullname": f.fullname,
            "group": f.group,
            "param": f.param,
            "params": f.params,
            "extra_info": dict(f.extra_info),
            "mode": f._mode,
            **({"pedantic": f._pedantic} if f._pedantic is not None else {}),
        }


def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any], setup: Callable[[], Any] | None):
    """`make()` -> `(args, kwargs)` of one round, from `setup` when it returns them."""

    def make() -> tuple[tuple[Any, ...], dict[str, Any]]:
        if setup is None:
            return args, kwargs
        got = setup()
        if not got:
            return args, kwargs
        if args or kwargs:
            raise PerfUsageError(
                "`benchmark.pedantic`: can't use `args` or `kwargs` when `setup` returns the "
                "arguments."
            )
        if not (
            isinstance(got, (tuple, list))
            and len(got) == 2
            and isinstance(got[0], (tuple, list))
            and isinstance(got[1], dict)
        ):
            raise PerfUsageError(
                "`benchmark.pedantic`: `setup` must return None or `(args, kwargs)` (a tuple "
                f"and a dict), got {got!r}."
            )
        return tuple(got[0]), dict(got[1])

    return make


def _pedantic_rounds(perf, target, make, teardown, rounds, warmup_rounds, iterations):
    """Exactly the rounds asked for, timed by the instrument the first call's output picks."""
    from ._compile import compile_log
    from ._engine import Candidate
    from ._reference import thread_clock
    from .instruments import select_instrument

    engine = perf._new_engine()
    settings = engine.settings

    def once() -> Any:  # what the profiler calls: one round's setup, call and teardown
        a, kw = make()
        out = target(*a, **kw)
        if teardown is not None:
            teardown(*a, **kw)
        return out

    def arguments() -> tuple[tuple[Any, ...], dict[str, Any]]:
        # A setup's device work (e.g. `torch.randn(..., device="cuda")`) is queued, not done:
        # waited for here, untimed, or the timed call would be charged for it.
        a, kw = make()
        select_instrument((a, kw)).wait((a, kw))
        return a, kw

    with engine.lock():
        engine.before_round()
        a, kw = arguments()
        with compile_log() as first_log:
            start = time.perf_counter()
            out = target(*a, **kw)
            instrument = select_instrument(out, settings.instrument)
            instrument.wait(out)
            first_call_s = time.perf_counter() - start
        if warmup_rounds:
            # The first call opens the first warm-up round (its other iterations follow, on
            # the same arguments): the calls made are exactly pytest-benchmark's. Without a
            # warm-up round the first call is one extra, so that no timed round holds it.
            instrument.time_calls(functools.partial(target, *a, **kw), iterations - 1)
        if teardown is not None:
            teardown(*a, **kw)
        cand = Candidate(SERIES_NAME, once, instrument, first_call_s, first_log)
        cand.statistic = settings.statistic
        cand.group = iterations
        cand.calls_per_timed_chunk = iterations
        for _ in range(max(0, warmup_rounds - 1)):
            engine.before_round()
            a, kw = arguments()
            instrument.time_calls(functools.partial(target, *a, **kw), iterations)
            if teardown is not None:
                teardown(*a, **kw)
        result = out
        with engine.timed_heap(settle=True):
            for _ in range(rounds):
                engine.before_round()
                a, kw = arguments()
                call = functools.partial(target, *a, **kw)
                round_start = time.perf_counter()
                cpu_start = thread_clock()
                with compile_log() as log:
                    seconds, result = instrument.time_calls(call, iterations)
                cand.cpu.add(cpu_start, thread_clock())
                cand.steady_compile.merge(log)
                per_call = seconds / iterations
                # One chunk per round: the round's sample is its mean (and its median).
                cand.samples.append(per_call)
                cand.chunk_s.append(per_call)
                wall = time.perf_counter() - round_start
                if teardown is not None:
                    teardown(*a, **kw)
                engine.round_walls.append(wall)
                engine.spent_s += wall
    record = perf._emit(
        "measure",
        SERIES_NAME,
        per=None,
        unit=None,
        per_unit_s=None,
        candidate=cand.as_dict(),
    )
    perf.sources.append((record, {SERIES_NAME: cand}))
    return result, cand


# ----------------------------------------------------------------------- the plugin


class BenchmarkPlugin:
    """Registered at configure where perfsuite provides `benchmark` (`wanted`).

    `perf_for(request, **settings)` is the plugin's context manager that makes a test's
    `Perf` (None without `--perf`); `perf_session` the session's `PerfSession` (or None).
    """

    def __init__(self, config: pytest.Config, perf_for: Any, perf_session: Any):
        self.config = config
        self._perf_for = perf_for
        self._perf_session = perf_session
        opt = config.getoption
        self.disabled = bool(opt("benchmark_disable", False)) and not opt("benchmark_enable", False)
        self.skip = bool(opt("benchmark_skip", False))
        self.only = bool(opt("benchmark_only", False))
        self.json_path: Path | None = opt("benchmark_json", None)
        given = given_options(config)
        self.ignored = [f for f in given if f not in USED_OPTIONS]
        # Read only when given: pytest-benchmark's own defaults (5 rounds, 1 s) would
        # otherwise replace perfsuite's (and --perf-quick's) whenever its plugin parsed them.
        self.min_rounds = opt("benchmark_min_rounds") if "--benchmark-min-rounds" in given else None
        self.max_time = opt("benchmark_max_time") if "--benchmark-max-time" in given else None
        self.json_written: Path | None = None
        self.json_error: str | None = None
        config.addinivalue_line(
            "markers",
            "benchmark(group=None, min_rounds=None, max_time=None, ...): pytest-benchmark's "
            "marker, read by perfsuite's `benchmark` fixture (group, min_rounds, max_time).",
        )

    def measures(self, item: pytest.Item) -> bool:
        """Whether `--perf` selects `item` for using `benchmark` (without a `perf` marker)."""
        return "benchmark" in getattr(item, "fixturenames", ())

    @pytest.fixture
    def benchmark(self, request: pytest.FixtureRequest) -> Iterator[BenchmarkFixture]:
        """pytest-benchmark's `benchmark`, measured by perfsuite under `--perf` (README)."""
        node = request.node
        opts = marker_options(node)
        if self.skip and not self.only:
            pytest.skip("Benchmarks are skipped (--benchmark-skip was used).")
        group = opts.get("group")
        if self._perf_for is None or self.disabled:
            fixture = BenchmarkFixture(node, group, None)
            yield fixture
            fixture.check_extra_info()
            return
        with self._perf_for(request, **self._settings(node, opts)) as perf:
            fixture = BenchmarkFixture(node, group, perf)
            yield fixture
            fixture.check_extra_info()

    @pytest.fixture
    def benchmark_weave(self, benchmark: BenchmarkFixture):
        """pytest-benchmark's aspectlib fixture: not supported (the error says instead what)."""
        benchmark.weave()

    def _settings(self, node: pytest.Item, opts: dict[str, Any]) -> dict[str, Any]:
        """Settings overrides: the marker's over the options; a `perf` marker's rounds win."""
        out: dict[str, Any] = {}
        rounds = opts.get("min_rounds", self.min_rounds)
        max_time = opts.get("max_time", self.max_time)
        perf_marker = node.get_closest_marker("perf")
        if rounds is not None and not (perf_marker and "rounds" in perf_marker.kwargs):
            out["min_rounds"] = int(rounds)
        if max_time is not None:
            out["measure_s"] = float(max_time)
        return out

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # A bad marker is an error of the test even when it never asks for the fixture.
        marker_options(item)

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]):
        # pytest-benchmark's --benchmark-only (it overrides --benchmark-skip).
        if self.only:
            skip = pytest.mark.skip(reason="Skipping non-benchmark (--benchmark-only active).")
            for item in items:
                if not self.measures(item):
                    item.add_marker(skip)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.json_path is None or os.environ.get("PYTEST_XDIST_WORKER"):
            return
        from ._results import write_atomic

        path = Path(self.json_path)
        if not path.is_absolute():
            path = Path(self.config.invocation_params.dir) / path
        measurements = self._perf_session.serialisable() if self._perf_session else []
        doc = pytest_benchmark_document(measurements, Path(self.config.rootpath))
        try:
            write_atomic(path, json.dumps(doc, indent=4, allow_nan=False) + "\n")
        except OSError as exc:
            self.json_error = f"could not write {path}: {exc.strerror or exc}"
        else:
            self.json_written = path

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tr = terminalreporter
        if self.json_written is not None:
            n = len(json.loads(self.json_written.read_text())["benchmarks"])
            tr.write_line(
                f"perf: wrote {n} benchmarks in pytest-benchmark's JSON format to "
                f"{self.json_written}"
            )
        if self.json_error:
            tr.write_line(f"perf: --benchmark-json: {self.json_error}", yellow=True)
        if self.ignored:
            tr.write_line(
                "perf: pytest-benchmark options accepted without effect under perfsuite's "
                f"`benchmark` fixture: {', '.join(self.ignored)}",
                yellow=True,
            )


def pytest_benchmark_document(measurements: list[dict[str, Any]], root: Path) -> dict[str, Any]:
    """The `benchmark` fixture's measurements as pytest-benchmark's `--benchmark-json` writes
    them (`machine_info`, `commit_info`, `benchmarks` with `stats` and their `data`)."""
    import datetime as _dt

    from . import __version__
    from ._machine import commit_info, fingerprint
    from ._results import _json_safe

    benchmarks = []
    for m in measurements:
        info = m.get("benchmark")
        if m.get("kind") != "measure" or not isinstance(info, dict):
            continue
        cand = m["candidate"]
        stats = BenchmarkStats(cand["samples_s"], cand["iterations_per_round"]).as_dict()
        benchmarks.append(
            {
                "group": info["group"],
                "name": info["name"],
                "fullname": info["fullname"],
                "params": info["params"],
                "param": info["param"],
                "extra_info": info["extra_info"],
                "options": {
                    "timer": "perf_counter",
                    "instrument": cand["instrument"]["name"],
                    "statistic": cand["statistic"],
                    "mode": info["mode"],
                    **(info.get("pedantic") or {}),
                },
                "stats": {**stats, "data": list(cand["samples_s"])},
                "perfsuite": {"id": m["id"], "first_call_s": cand["first_call_s"]},
            }
        )
    return _json_safe(
        {
            "machine_info": fingerprint(),
            "commit_info": commit_info(root),
            "benchmarks": benchmarks,
            "datetime": _dt.datetime.now(_dt.UTC).isoformat(),
            "version": f"perfsuite {__version__}",
        }
    )
