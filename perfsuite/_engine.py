"""The measurement engine: first call, warm-up, calibration and interleaved rounds.

A *round* times every candidate once, back to back, in an order rotated from round to round
(so no candidate always runs first, after the others warmed the caches). Each candidate runs
`chunks x group` calls per round, calibrated once: a chunk of `group` calls lasts at least
`CHUNK_S` (so timer resolution and overhead are negligible), and a round lasts about
`target_round_s`. A sample is the median over the round's chunks of seconds per call: robust
to the preemptions and page faults of a busy shared machine, which hit single chunks.
"""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._compile import CompileLog, compile_log
from ._settings import Settings
from ._turns import take_turn
from .instruments import Instrument, select_instrument


#: Shortest chunk of calls timed as one: far above timer resolution (~100 ns) and overhead.
CHUNK_S = 50e-6


@dataclass
class Candidate:
    """One named callable under measurement, with everything measured about it so far."""

    name: str
    fn: Callable[[], Any]
    instrument: Instrument
    first_call_s: float
    first_compile: CompileLog
    group: int = 1
    chunks: int = 1
    samples: list[float] = field(default_factory=list)
    steady_compile: CompileLog = field(default_factory=CompileLog)

    @property
    def iterations(self) -> int:
        """Calls per round."""
        return self.group * self.chunks

    @property
    def retraces(self) -> int:
        """Compilations after warm-up: each one means the callable was traced again."""
        return self.steady_compile.compilations

    def as_dict(self) -> dict[str, Any]:
        from ._stats import Summary

        return {
            "name": self.name,
            "instrument": self.instrument.describe(),
            "iterations_per_round": self.iterations,
            "calls_per_chunk": self.group,
            "first_call_s": self.first_call_s,
            "compile": self.first_compile.as_dict(),
            "retraces": self.retraces,
            "stats": Summary.of(self.samples).as_dict(),
            "samples_s": list(self.samples),
        }


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # A collection inside a timed round charges one candidate for everyone's garbage.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Engine:
    """Runs candidates under one test's settings and keeps count of the time spent."""

    def __init__(self, settings: Settings, device_lock: Callable[[], Any]):
        self.settings = settings
        self._device_lock = device_lock
        self.spent_s = 0.0

    def lock(self):
        """Held around every timed section, so parallel workers never overlap on a device."""
        return self._device_lock()

    def prepare(self, name: str, fn: Callable[[], Any], instrument: str | None) -> Candidate:
        """First call (kept apart: it includes tracing/compilation), warm-up and calibration."""
        if not callable(fn):
            raise TypeError(f"`{name}` must be a callable taking no arguments, got {fn!r}.")
        take_turn()  # under `perfsuite ab`: the partner process waits while we compile/warm up
        with compile_log() as first_log:
            start = time.perf_counter()
            out = fn()
            chosen = select_instrument(out, instrument or self.settings.instrument)
            chosen.wait(out)
            first_call_s = time.perf_counter() - start
        cand = Candidate(name, fn, chosen, first_call_s, first_log)
        # Warm-up: repeat until `warmup_s` has passed (at least twice) so caches, allocators
        # and lazy initialisation settle; the calls' mean calibrates the round length.
        calls, elapsed, restarts = 0, 0.0, 0
        while calls < 2 or elapsed < self.settings.warmup_s:
            with compile_log() as log:
                seconds, _ = chosen.time_calls(fn, 1)
            if log.compilations:
                cand.first_compile.merge(log)
                if restarts < 3:
                    # Still compiling (e.g. a second trace once buffers are donated): not
                    # warm yet. A callable that compiles on every call never settles; after
                    # a few restarts it is measured as it is, and its retraces are reported.
                    restarts += 1
                    calls, elapsed = 0, 0.0
                    continue
            elapsed += seconds
            calls += 1
        per_call = max(elapsed / calls, 1e-9)
        cand.group = max(1, math.ceil(CHUNK_S / per_call))
        cand.chunks = max(1, round(self.settings.target_round_s / (cand.group * per_call)))
        return cand

    def run_rounds(self, candidates: list[Candidate], rounds: int) -> None:
        """Run `rounds` interleaved rounds, rotating the order each round."""
        n = len(candidates)
        for _ in range(rounds):
            take_turn()
            start_index = len(candidates[0].samples) % n
            order = candidates[start_index:] + candidates[:start_index]
            round_start = time.perf_counter()
            for cand in order:
                with compile_log() as log, _gc_paused():
                    per_call = cand.instrument.time_chunks(cand.fn, cand.chunks, cand.group)
                cand.samples.append(statistics.median(per_call))
                cand.steady_compile.merge(log)
            self.spent_s += time.perf_counter() - round_start

    def round_seconds(self, candidates: list[Candidate]) -> float:
        """Expected wall time of one round, from the samples so far."""
        return sum((c.samples[-1] if c.samples else 0.0) * c.iterations for c in candidates)

    def can_afford(self, candidates: list[Candidate], rounds: int) -> bool:
        return self.spent_s + rounds * self.round_seconds(candidates) <= self.settings.budget_s

    def extend(self, candidates: list[Candidate]) -> bool:
        """Add a batch of rounds (half again as many as so far) if the budget allows.

        Returns False when the budget cannot pay for even a few more rounds. Growing
        geometrically keeps the number of looks at the data small (each look is a chance
        of a wrong early decision) while still stopping soon after the answer is clear.
        """
        done = len(candidates[0].samples)
        want = max(4, done // 2)
        while want >= 2 and not self.can_afford(candidates, want):
            want //= 2
        if want < 2:
            return False
        self.run_rounds(candidates, want)
        return True
