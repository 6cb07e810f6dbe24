"""perfsuite's `benchmark` fixture object: pytest-benchmark's documented API.

Under `--perf` it measures with perfsuite's engine: `benchmark(fn, *args, **kwargs)` is
`perf.measure` of `fn(*args, **kwargs)` (first call kept apart, warm-up, the instrument
chosen from the output, i.e. the device sync, calibrated rounds), named `benchmark`;
`benchmark.pedantic(...)` runs exactly the rounds and iterations asked for (a setup before
each round, untimed), after one first call kept apart (`_benchmark_rounds`). Both are results
of kind `measure` in perfsuite's JSON with a `benchmark` entry (group, name, fullname, params,
extra_info, mode), so baselines, the report, asv export and `perfsuite ab` see them as any
`perf.measure`. Without `--perf` (or with `--benchmark-disable`) `fn` runs once and its
result is returned, as pytest-benchmark's `--benchmark-disable` does.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import pytest

from ._benchmark_rounds import SERIES_NAME, _arguments, _pedantic_rounds
from ._benchmark_stats import BenchmarkStats
from ._errors import PerfUsageError


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
