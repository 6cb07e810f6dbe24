"""The `perf` fixture: what a perf test calls."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._comparison import Comparison, compare
from ._engine import Candidate, Engine
from ._errors import PerfUsageError
from ._format import fmt_seconds
from ._memory import MemoryStats, check_at_most, memory_of
from ._scaling import ScalingFit, assert_scaling
from ._settings import Settings, check_statistic
from ._steps import StepStats, check_retraces, run_steps


@dataclass(frozen=True)
class Measurement:
    """One callable measured alone: per-call seconds per round, first call kept apart."""

    name: str
    candidate: Candidate
    per: float | None
    unit: str | None

    @property
    def per_call_s(self) -> float:
        """Seconds per call by the measurement's statistic (default: the mean cost)."""
        return self.candidate.per_call_s

    @property
    def statistic(self) -> str:
        return self.candidate.statistic

    @property
    def median_s(self) -> float:
        """Median over rounds of the per-round samples."""
        import numpy as np

        return float(np.median(self.candidate.samples))

    @property
    def tails(self) -> dict[str, Any]:
        """p50/p90/p99/max of the chunk times (seconds per call)."""
        return self.candidate.tails()

    @property
    def min_s(self) -> float:
        return float(min(self.candidate.samples))

    @property
    def first_call_s(self) -> float:
        return self.candidate.first_call_s

    @property
    def per_unit_s(self) -> float | None:
        return None if self.per is None else self.per_call_s / self.per

    @property
    def rounds(self) -> int:
        return len(self.candidate.samples)

    @property
    def memory(self) -> MemoryStats | None:
        """Memory one call needs (one untimed call after warm-up); None without a source."""
        return self.candidate.memory

    @property
    def counts(self):
        """Exact counts of one call (`perfsuite._counts.Counts`), or None when off."""
        return self.candidate.counts

    def __str__(self) -> str:
        text = f"{self.name}: {self.statistic} {fmt_seconds(self.per_call_s)}/call"
        if self.per is not None:
            text += f" ({fmt_seconds(self.per_unit_s)}/{self.unit or 'unit'})"
        t = self.tails
        return (
            text + f" over {self.rounds} rounds (p50 {fmt_seconds(t['p50'])}, p99 "
            f"{fmt_seconds(t['p99'])}, max {fmt_seconds(t['max'])}), first call "
            f"{fmt_seconds(self.first_call_s)}"
        )


class Perf:
    """Measurement API of one perf test (the `perf` fixture): README.md, "Reference".

    Every method records what it measured in the session's results (JSON and the terminal
    table), whether or not an assertion on it passes.
    """

    def __init__(
        self,
        nodeid: str,
        settings: Settings,
        device_lock: Callable[[], Any],
        sink: Callable[[dict[str, Any]], None],
        before_round: Callable[[], None] = lambda: None,
    ):
        self.nodeid = nodeid
        self.settings = settings
        self._device_lock = device_lock
        self._sink = sink
        self._before_round = before_round
        #: Names (and compare candidates) used so far in this test: see `_claim`.
        self._names: set[str] = set()
        #: Profiles both sides of a comparison after its verdict (`perfsuite._profile`).
        self.profiler: Any = None
        #: Each timed measurement emitted and its candidates by name (for the profiler).
        self.sources: list[tuple[dict[str, Any], dict[str, Candidate]]] = []
        #: Progress lines of undecided comparisons (`perfsuite._progress.ProgressLines`).
        self.progress: Any = None

    def _new_engine(self, statistic: str | None = None) -> Engine:
        # A fresh engine per call: the budget is per comparison (or measurement), so a
        # test's second comparison does not inherit what the first one spent.
        settings = self.settings
        if statistic is not None:
            settings = dataclasses.replace(settings, statistic=check_statistic(statistic))
        return Engine(settings, self._device_lock, self._before_round)

    def _emit(self, kind: str, name: str, **payload: Any) -> dict[str, Any]:
        self._claim(kind, name, payload)
        record = {
            "test": self.nodeid,
            "name": name,
            "id": f"{self.nodeid}::{name}",
            "kind": kind,
            **payload,
        }
        self._sink(record)
        return record

    def _claim(self, kind: str, name: str, payload: dict[str, Any]) -> None:
        """Refuse a name already used in this test: ids (and series ids) must be unique.

        A measurement's id is `<test>::<name>`, and a comparison's candidates are series
        `<test>::<candidate>` too (in baselines, `perfsuite ab` and asv), so a measurement
        named like a candidate of a comparison collides as surely as two of the same name.
        """
        names = [name]
        if kind == "compare":
            names += [c.name for c in payload["comparison"]["candidates"]._cands]
        taken = [n for n in dict.fromkeys(names) if n in self._names]
        if taken:
            raise PerfUsageError(
                f"`name` {taken[0]!r} is already used by another measurement of {self.nodeid}: "
                "every measurement (and every candidate of a `compare`) in a test needs its "
                "own name, or their results and baselines would be mixed up."
            )
        self._names.update(names)

    def measure(
        self,
        fn: Callable[[], Any],
        *,
        name: str,
        per: float | None = None,
        unit: str | None = None,
        instrument: str | None = None,
        statistic: str | None = None,
    ) -> Measurement:
        """Time `fn()` alone: first call, warm-up, then calibrated rounds.

        `per=74, unit="leaf"` also reports the time per leaf. `statistic` is what a round's
        sample is: `"mean"` cost per call (default, slow calls included) or `"median"` chunk.
        """
        if per is not None and not per > 0:
            raise PerfUsageError(f"`per` must be > 0, got {per!r}.")
        engine = self._new_engine(statistic)
        with engine.lock():
            cand = engine.prepare(name, fn, instrument)
            engine.run_rounds([cand], engine.settings.min_rounds)
            start = engine.spent_s
            while engine.spent_s - start < engine.settings.measure_s and engine.can_afford(
                [cand], 1
            ):
                engine.run_rounds([cand], max(1, len(cand.samples) // 2), within_budget=True)
        m = Measurement(name, cand, per, unit)
        record = self._emit(
            "measure", name, per=per, unit=unit, per_unit_s=m.per_unit_s, candidate=cand.as_dict()
        )
        self.sources.append((record, {name: cand}))
        return m

    def compare(
        self,
        *,
        instrument: str | None = None,
        statistic: str | None = None,
        **fns: Callable[[], Any],
    ) -> Comparison:
        """Time the named callables interleaved, round by round. Returns a `Comparison`.

        `min_rounds` rounds run now; assertions on the comparison add rounds until decided.
        `statistic`: `"mean"` cost per call (default: what a user pays, slow calls included)
        or `"median"` chunk (the typical call); see `Ratio`.
        """
        record: dict[str, Any] = {"candidates": [], "verdicts": []}
        holder: dict[str, Any] = {}
        started = time.monotonic()  # progress lines count from here (issue 13)
        cmp = compare(
            settings=self.settings,
            instrument=instrument,
            statistic=statistic,
            device_lock=self._device_lock,
            before_round=self._before_round,
            on_verdict=self._on_verdict(record, holder),
            **fns,
        )
        # Emitted now and filled in as assertions run: a failing assertion still leaves its
        # numbers in the results.
        holder["cmp"] = cmp
        if self.progress is not None:
            cmp.on_progress = self.progress.for_comparison(self.nodeid, started)
        record["candidates"] = _LiveCandidates(list(cmp.candidates.values()))
        holder["m"] = self._emit("compare", "+".join(fns), comparison=record)
        self.sources.append((holder["m"], cmp.candidates))
        return cmp

    def _on_verdict(
        self, record: dict[str, Any], holder: dict[str, Any]
    ) -> Callable[[dict[str, Any]], str | None]:
        """Record a verdict; with a profiler, profile its pair and return the message's end.

        `holder` gets the comparison (`cmp`) and its measurement (`m`) from `compare`.
        """

        def on_verdict(verdict: dict[str, Any]) -> str | None:
            record["verdicts"].append(verdict)
            if self.profiler is None or "m" not in holder:
                return None
            return self.profiler.after_verdict(verdict, holder["cmp"].candidates, holder["m"])

        return on_verdict

    def steps(
        self,
        step: Callable[[Any, Any], Any],
        state: Any,
        batches: Iterable[Any] | Callable[[int], Any],
        *,
        n: int,
        warmup: int = 2,
        name: str = "steps",
        max_retraces: int | None = None,
        instrument: str | None = None,
    ) -> StepStats:
        """Run `state = step(state, batch)` and time every step (waited for).

        The first step is kept apart (`first_step_s`), then `warmup - 1` more untimed steps,
        then `n` timed steps. `batches` is a sequence (cycled), an iterator, or a function of
        the step index. `max_retraces=0` fails the test if anything compiles during the
        timed steps. Then, untimed, the steps that count one step's work (`StepStats.counts`,
        `counted_steps` of them, on the last batch again). The final state is
        `StepStats.state`.
        """
        __tracebackhide__ = True
        stats, steady = run_steps(
            self._new_engine(),
            step,
            state,
            batches,
            n=n,
            warmup=warmup,
            name=name,
            instrument=instrument,
        )
        self._emit("steps", name, steps=stats.as_dict())
        check_retraces(stats, steady, max_retraces)
        return stats

    def assert_scaling(
        self,
        make: Callable[[Any], Callable[[], Any]],
        sizes: Sequence[Any],
        *,
        law: str = "linear",
        per: Callable[[Any], float] | Mapping[Any, float] | None = None,
        unit: str | None = None,
        tolerance: float = 0.25,
        name: str = "scaling",
        instrument: str | None = None,
        metric: str = "steady",
    ) -> ScalingFit:
        """Check that time grows with size as `law` says.

        `make(n)` returns the zero-argument callable for size `n`. The slope of log time
        against log size (or log `per(n)`, e.g. the number of leaves) is fitted per round;
        its interval must lie within `tolerance` of the law's slope over these sizes.

        `metric` is what is timed: `"steady"` (default) warm calls, calibrated into rounds;
        `"first_call"` the first call (trace + compile + run, waited for) of a callable
        built afresh: `make(n)` is called again for every sample, once per size per round,
        and must return something new each time (with JAX, a first call that compiles
        nothing is a `PerfUsageError`). Each round then costs one first call per size, so
        keep the sizes few and cheap; `@pytest.mark.perf(rounds=...)` sets the rounds.
        `"compile"` the same first calls, but timing only their XLA backend compilations
        (JAX; a first call that compiles nothing is a `PerfUsageError`): for claims about the
        compiler's work, without the tracing and Python work the first call also pays.
        """
        __tracebackhide__ = True

        def on_result(fit: ScalingFit, verdict: str) -> None:
            self._emit("scaling", name, scaling=fit.as_dict(), verdict=verdict)

        return assert_scaling(
            self._new_engine(),
            make,
            sizes,
            law=law,
            per=per,
            unit=unit,
            tolerance=tolerance,
            instrument=instrument,
            on_result=on_result,
            metric=metric,
        )

    def memory(
        self,
        fn: Callable[..., Any],
        *args: Any,
        name: str,
        at_most: int | str | None = None,
        source: str | None = None,
        **kwargs: Any,
    ) -> MemoryStats:
        """How much memory one call of `fn(*args, **kwargs)` needs (`MemoryStats`).

        A jitted `fn` (`jax.jit`) is analysed statically (XLA `memory_analysis()`, exact,
        nothing runs); anything else is called once to warm up, then once measured by the
        source its output implies (torch CUDA, JAX device stats, host RSS). `at_most` (bytes,
        or a size such as `"2 GiB"`) fails the test with the numbers when the peak exceeds it.
        `source` forces one (`torch-cuda`, `jax-device`, `xla-memory-analysis`, `host-rss`).
        """
        __tracebackhide__ = True
        if at_most is not None:
            from ._values import parse_size_arg

            parse_size_arg(at_most, "at_most")  # a bad limit fails before anything runs
        stats = memory_of(fn, args, kwargs, source)
        self._emit("memory", name, memory=stats.as_dict(), at_most=at_most)
        check_at_most(stats, at_most, name)
        return stats

    def counts(
        self, fn: Callable[[], Any], *, name: str, at_most: Mapping[str, float] | None = None
    ):
        """Count the work of one call of `fn` (untimed, twice; see `perfsuite._counts`).

        Returns the `Counts` (mapping-like: `counts["python_calls"]`). `at_most=
        {"python_calls": 300, "compilations": 0}` fails the test, with the numbers, when a
        counter exceeds its limit (or is non-deterministic). The first call of `fn` (its
        compilation) is made and left out before counting.
        """
        __tracebackhide__ = True
        from ._counts import check_at_most, count_call

        counts = count_call(fn, lock=self._device_lock, before=self._before_round)
        self._emit("counts", name, counts=counts.to_json(), at_most=dict(at_most or {}))
        check_at_most(counts, at_most, f"`{name}`")
        return counts

    def record(self, name: str, value: float, unit: str) -> None:
        """Record any other number (a speedup, bytes, compile seconds) for reports and asv."""
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise PerfUsageError(f"`value` must be a number, got {value!r}.") from None
        if not math.isfinite(value):
            # NaN and Infinity are not JSON: other tools could not read the results file.
            raise PerfUsageError(f"`value` must be a finite number, got {value!r} for {name!r}.")
        self._emit("record", name, value=value, unit=unit)


class _LiveCandidates:
    """Serialises the candidates as they are when the results are written, not when emitted."""

    def __init__(self, cands: list[Candidate]):
        self._cands = cands

    def to_json(self) -> list[dict[str, Any]]:
        return [c.as_dict() for c in self._cands]
