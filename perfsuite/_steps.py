"""Per-step timing of training loops: `perf.steps(...)` and `StepStats`."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._compile import CompileLog, compile_log
from ._engine import Engine, tails_of
from ._errors import PerfFailure, PerfUsageError
from ._format import fmt_seconds
from ._memory import MemoryStats, Watch
from ._reference import CpuShare, thread_clock
from .instruments import select_instrument


@dataclass(frozen=True)
class StepStats:
    """Per-step wall times of `state = step(state, batch)`, each step waited for.

    The first step (trace/compile) is kept apart in `first_step_s`; `times_s` holds the
    steady-state steps after warm-up. `retraces` counts JAX compilations during them.
    """

    name: str
    times_s: tuple[float, ...]
    first_step_s: float
    warmup: int
    retraces: int
    compile: dict[str, Any]
    instrument: str
    state: Any = None
    #: Peak memory over the timed steps (counters read before and after them), or None.
    memory: MemoryStats | None = None
    #: Exact counts of one step (`perfsuite._counts`), taken after the timed steps.
    counts: Any = None
    #: Untimed steps run after the timed ones to count them (on the last batch again);
    #: `state` is the state after them (the earlier states were donated).
    counted_steps: int = 0
    #: Share of the timed steps' wall time the thread spent computing (the baseline gate
    #: normalises only CPU-bound series by the machine-speed reference); None if unread.
    cpu_share: float | None = None

    @property
    def median_s(self) -> float:
        return float(np.median(self.times_s))

    @property
    def iqr_s(self) -> float:
        q1, q3 = np.percentile(self.times_s, [25, 75])
        return float(q3 - q1)

    @property
    def mean_s(self) -> float:
        return float(np.mean(self.times_s))

    @property
    def steps_per_s(self) -> float:
        """Throughput a training run gets: steps over their total time (slow steps included)."""
        return 1.0 / self.mean_s

    @property
    def tails(self) -> dict[str, Any]:
        """p50/p90/p99/max of the step times: a stall shows even where the mean hides it."""
        return tails_of(self.times_s)

    def __str__(self) -> str:
        t = self.tails
        return (
            f"{self.name}: mean {fmt_seconds(self.mean_s)}/step (p50 {fmt_seconds(t['p50'])}, "
            f"p99 {fmt_seconds(t['p99'])}, max {fmt_seconds(t['max'])}) over "
            f"{len(self.times_s)} steps, first step {fmt_seconds(self.first_step_s)}, "
            f"{self.retraces} retraces"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "instrument": self.instrument,
            "first_step_s": self.first_step_s,
            "warmup": self.warmup,
            "retraces": self.retraces,
            "compile": self.compile,
            "stats": {
                "median": self.median_s,
                "min": float(np.min(self.times_s)),
                "mean": self.mean_s,
                "iqr": self.iqr_s,
                "rounds": len(self.times_s),
                "steps_per_s": self.steps_per_s,
            },
            "statistic": "mean",
            "per_call_s": self.mean_s,
            "tails": self.tails,
            "samples_s": list(self.times_s),
            "cpu_share": self.cpu_share,
            **({"memory": self.memory.as_dict()} if self.memory is not None else {}),
            **self._counts_dict(),
        }

    def _counts_dict(self) -> dict[str, Any]:
        if self.counts is None:
            return {}
        from ._roofline import roofline

        counts = self.counts.to_json()
        return {"counts": counts, "roofline": roofline(counts, self.mean_s)}


def _batch_source(batches: Iterable[Any] | Callable[[int], Any], needed: int):
    """`next(source)` gives the next batch; an iterator that runs out is a clear error.

    `needed` (`warmup + n`) is how many batches the steps take, for the message.
    """
    if callable(batches) and not hasattr(batches, "__iter__"):
        return (batches(i) for i in itertools.count())
    if isinstance(batches, (list, tuple)):
        if not batches:
            raise PerfUsageError("`batches` must not be empty.")
        return itertools.cycle(batches)
    return _Counted(iter(batches), needed)


class _Counted:
    """An iterator of batches whose end raises a `ValueError` naming `batches`.

    A bare `StopIteration` escaping `perf.steps` says nothing about why it stopped (and
    inside a generator it would silently end it).
    """

    def __init__(self, it, needed: int):
        self._it, self._needed, self._taken = it, needed, 0

    def __iter__(self):
        return self

    def __next__(self):
        try:
            batch = next(self._it)
        except StopIteration:
            raise PerfUsageError(
                f"`batches` ran out after {self._taken} batches; the steps need "
                f"warmup + n = {self._needed}. Pass a longer iterator, a sequence (cycled) "
                "or a function of the step index."
            ) from None
        self._taken += 1
        return batch


def run_steps(
    engine: Engine,
    step: Callable[[Any, Any], Any],
    state: Any,
    batches: Iterable[Any] | Callable[[int], Any],
    *,
    n: int,
    warmup: int,
    name: str,
    instrument: str | None,
) -> tuple[StepStats, CompileLog]:
    __tracebackhide__ = True
    if n < 1:
        raise PerfUsageError(f"`n` must be >= 1, got {n!r}.")
    if warmup < 1:
        raise PerfUsageError(
            f"`warmup` must be >= 1 (the first step is always kept apart), got {warmup!r}."
        )
    source = _batch_source(batches, warmup + n)
    steady = CompileLog()
    times: list[float] = []
    with engine.lock():
        engine.before_round()
        with compile_log() as first:
            start = time.perf_counter()
            state = step(state, next(source))
            inst = select_instrument(state, instrument or engine.settings.instrument)
            inst.wait(state)
            first_step_s = time.perf_counter() - start
            for _ in range(warmup - 1):
                state = step(state, next(source))
                inst.wait(state)
        # The peak over the timed steps: counters read (and the host's high-water mark reset)
        # once before and once after them, nothing per step.
        cpu = CpuShare()
        with engine.timed_heap(settle=True), Watch(inst.name) as watch:
            # One reading before and after the steps, none per step (a step may be shorter
            # than the ~20 us a reading takes); the reference samples between the steps are
            # CPU work inside the span, at most ~3% of it (`MIN_GAP_S`).
            cpu_start = thread_clock()
            for _ in range(n):
                engine.before_round()
                batch = next(source)
                with compile_log() as log:
                    start = time.perf_counter()
                    state = step(state, batch)
                    inst.wait(state)
                    times.append(time.perf_counter() - start)
                steady.merge(log)
            cpu.add(cpu_start, thread_clock())
        counts, counted = None, 0
        if engine.settings.counts:
            # Counted after the timed steps, on the last batch again (the batch source may
            # hold only `warmup + n`), each step consuming the state the previous returned.
            from ._counts import candidate_counts

            holder = [state, 0]

            def one_step():
                holder[0] = step(holder[0], batch)
                holder[1] += 1
                return holder[0]

            counts = candidate_counts(one_step, inst.wait)
            state, counted = holder
    stats = StepStats(
        name=name,
        times_s=tuple(times),
        first_step_s=first_step_s,
        warmup=warmup,
        retraces=steady.compilations,
        compile=first.as_dict(),
        instrument=inst.name,
        state=state,
        memory=watch.stats,
        counts=counts,
        counted_steps=counted,
        cpu_share=cpu.share,
    )
    return stats, steady


def check_retraces(stats: StepStats, steady: CompileLog, max_retraces: int | None) -> None:
    __tracebackhide__ = True
    if max_retraces is not None and stats.retraces > max_retraces:
        compiles = ", ".join(
            f"{s:.3g} s" for e, s in steady.events if e == "backend_compile_duration"
        )
        raise PerfFailure(
            f"`steps` {stats}; required at most {max_retraces} retraces after warm-up "
            f"(backend compilations during timed steps: {compiles})."
        )
