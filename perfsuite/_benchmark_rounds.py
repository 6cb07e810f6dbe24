"""`benchmark.pedantic`'s rounds: exactly the rounds and iterations asked for.

pytest-benchmark's pedantic mode fixes the rounds itself, so perfsuite's calibration of
rounds (`perf.measure`) cannot run it: this module times the rounds with perfsuite's
instrument (the device sync the first call's output picks), keeps the first call apart
(`first_call_s`: it holds the compilation) and records a `measure` result as `perf.measure`
does. The arguments of each round come from `setup` when it returns them (`_arguments`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from ._errors import PerfUsageError


#: Measurement name of a benchmark in perfsuite's results: the series is `<test id>::benchmark`.
SERIES_NAME = "benchmark"


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
