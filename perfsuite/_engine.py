"""The measurement engine: first call, warm-up, calibration and interleaved rounds.

A *round* times every candidate, in an order rotated from round to round (so no candidate
always runs first, after the others warmed the caches), their chunks interleaved over the
round (`_schedule`) so that all of them see the same stretch of the machine's time. Each
candidate runs `chunks x group` calls per round, calibrated once: a chunk of `group` calls lasts at least
`CHUNK_S` (so timer resolution and overhead are negligible), and a round lasts about
`target_round_s` and holds at least `min_round_calls` calls (while under `max_round_s`).

A round's sample is, by default, the **mean cost per call**: the total time of the round's
calls divided by their number. The workload's own slow calls (a collection, an allocator
growing, a recompile, a host sync, a data-loader hiccup) are part of what a user pays, so
they stay in. Robustness to the *machine's* noise comes from elsewhere: interleaving,
pairing the candidates round by round, and distribution-free intervals across rounds, where
one preempted round is one outlier among many. `statistic="median"` (the median over the
round's chunks) is the explicit choice for claims about the typical call. Every chunk's time
is kept, so tails (p50/p90/p99/max) are reported whatever the statistic.

On Linux, the time the machine kept the timing thread *runnable but off its CPU* (its
run-queue wait, a neighbour's job) is taken out of each chunk, for rounds in which nothing of
the workload's own (another thread, a child process) ran: that wait is the machine's noise,
never the workload's cost (`perfsuite.instruments._machine_wait`). A candidate's results say
how much was taken out (`machine_wait_s`) and in how many rounds.

The garbage collector stays on during rounds (a program pays for its garbage): a collection
falls on the candidate whose allocation triggers it. One full collection before the first
round settles what setting the test up left behind, and the heap that exists then is frozen
for the rounds (`gc.freeze`, `Settings.freeze_heap`): a full collection inside a round scans
what the candidates allocated, not the test process's heap. Unfrozen, one scan of that heap
(130 ms in BERT-12L's test process on a 2-core runner, ~13 calls' worth) fell on whichever
candidate crossed the threshold, often the same one (20 of 22 in one run), and an A/A pair
came out at 0.55x; the heap's size is the harness's, the collections' frequency stays the
workload's.

What is measured of each callable is its `Candidate` (`perfsuite._candidate`, re-exported
here).
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

from ._candidate import TAIL_QUANTILES as TAIL_QUANTILES
from ._candidate import Candidate as Candidate
from ._candidate import tails_of as tails_of
from ._compile import compile_log
from ._errors import PerfUsageError, PerfWarning
from ._memory import measure_call
from ._reference import thread_clock
from ._settings import Settings
from .instruments import select_instrument
from .instruments._machine_wait import IDLE_SHARE, MachineWait, OtherThreads


#: Shortest chunk of calls timed as one: far above timer resolution (~100 ns) and overhead.
CHUNK_S = 50e-6


def _warn_if_lazy(name: str, out: Any) -> None:
    # A generator's body runs only when iterated: timing its creation would report the cost
    # of making a generator (nanoseconds), not of the work it stands for.
    if inspect.isgenerator(out) or inspect.isasyncgen(out) or inspect.iscoroutine(out):
        warnings.warn(
            PerfWarning(
                f"`{name}` returned a {type(out).__name__}: only its creation is timed, not "
                "the work it would do when consumed. Return the result instead (e.g. "
                "`lambda: list(gen())`)."
            ),
            stacklevel=4,
        )


def _schedule(order: list[Candidate], interleave: bool) -> list[tuple[Candidate, int]]:
    """One round's timed pieces, `(candidate, chunks)`, in the order they run.

    Interleaved, each candidate's chunks are spread evenly over the round (chunk `j` of `n`
    at position `(j + 1/2) / n`, ties in the round's rotated order), so every candidate sees
    the same stretch of the machine's time: a neighbour that takes the CPU for a few
    milliseconds, or load that comes and goes within the round, falls on all candidates
    alike instead of on whichever ran its whole share then. Instruments that time a round
    as one piece on the device (`interleavable = False`: CUDA events, which keep the GPU's
    queue full) run their share in one go.
    """
    if not interleave:
        return [(c, c.chunks) for c in order]
    slots: list[tuple[float, int, Candidate, int]] = []
    for rank, cand in enumerate(order):
        if not cand.instrument.interleavable:
            slots.append((0.5, rank, cand, cand.chunks))
            continue
        for j in range(cand.chunks):
            slots.append(((j + 0.5) / cand.chunks, rank, cand, 1))
    slots.sort(key=lambda s: (s[0], s[1]))
    return [(cand, chunks) for _, _, cand, chunks in slots]


def _inject_slowdown(cand: Candidate) -> None:
    """Under `perfsuite calibrate` (its environment variable set), every timed call of the
    candidate is made slower by that factor, with real busy-waiting (`perfsuite._calibrate`).
    Memory and counts were read from the unwrapped callable already."""
    from ._calibrate import SLOWDOWN_ENV, parse_slowdown, slowed

    factor = parse_slowdown(os.environ.get(SLOWDOWN_ENV))
    if factor is not None and factor > 1.0:
        name = cand.instrument.name
        on_device = "cuda" in name
        if name == "jax":
            import jax

            on_device = jax.default_backend() != "cpu"
        cand.fn = slowed(cand.fn, cand.instrument.wait, factor, on_device=on_device)
        cand.injected_slowdown = factor


class Engine:
    """Runs candidates under one test's settings and keeps count of the time spent."""

    def __init__(
        self,
        settings: Settings,
        device_lock: Callable[[], Any],
        before_round: Callable[[], None] = lambda: None,
    ):
        self.settings = settings
        self._device_lock = device_lock
        #: Called before every timed section (the plugin hands `perfsuite ab`'s turn-taking
        #: here, so the partner process waits while this one times).
        self.before_round = before_round
        self.spent_s = 0.0
        #: Wall time of every round so far (what a further round is predicted from).
        self.round_walls: list[float] = []
        #: Interleave the candidates chunk by chunk within a round (see `_schedule`).
        self.interleave = settings.interleave
        self._machine_wait = MachineWait() if settings.subtract_machine_wait else None
        if self._machine_wait is not None and not self._machine_wait.available:
            self._machine_wait = None
        self._others = OtherThreads()

    def lock(self):
        """Held around every timed section, so parallel workers never overlap on a device."""
        return self._device_lock()

    def prepare(self, name: str, fn: Callable[[], Any], instrument: str | None) -> Candidate:
        """First call (kept apart: it includes tracing/compilation), warm-up and calibration."""
        if not callable(fn):
            raise PerfUsageError(f"`{name}` must be a callable taking no arguments, got {fn!r}.")
        self.before_round()  # under `perfsuite ab`: the partner waits while we compile/warm up
        with compile_log() as first_log:
            start = time.perf_counter()
            out = fn()
            chosen = select_instrument(out, instrument or self.settings.instrument)
            chosen.wait(out)
            first_call_s = time.perf_counter() - start
        _warn_if_lazy(name, out)
        cand = Candidate(name, fn, chosen, first_call_s, first_log)
        cand.statistic = self.settings.statistic
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
        # Memory: one extra, untimed call, warm (compilation and allocator warm-up are not
        # what a call needs), never inside a timed round.
        cand.memory = measure_call(fn, chosen)
        s = self.settings
        cand.group = max(1, math.ceil(CHUNK_S / per_call))
        # Calls per round: `target_round_s` worth, but at least `min_round_calls` as long as
        # that fits in `max_round_s` (so a round's mean sees the workload's periodic slow
        # calls, e.g. one in ten, instead of landing between them).
        calls = max(
            s.target_round_s / per_call,
            min(s.min_round_calls, math.floor(s.max_round_s / per_call)),
        )
        cand.chunks = max(1, round(calls / cand.group))
        if s.counts:
            from ._counts import candidate_counts

            cand.counts = candidate_counts(fn, chosen.wait)
        _inject_slowdown(cand)
        return cand

    def run_rounds(
        self, candidates: list[Candidate], rounds: int, *, within_budget: bool = False
    ) -> None:
        """Run `rounds` interleaved rounds, rotating the order each round.

        `within_budget`: stop early (between rounds) once the next round would end past the
        budget, so a batch that was predicted to fit cannot overrun it when calls slow down.
        """
        first = not any(c.samples for c in candidates)
        if first and any(c.counts is not None for c in candidates):
            from ._counts import restore_fast_paths

            restore_fast_paths([(c.fn, c.instrument.wait) for c in candidates])
        with self.timed_heap(settle=first):
            self._rounds(candidates, rounds, within_budget)

    @contextlib.contextmanager
    def timed_heap(self, *, settle: bool):
        """The collector's state for timed calls (see `Settings.freeze_heap`).

        `settle`: first, one full collection (before a measurement's first round), so what
        setting up the test left behind is not collected inside the rounds (an explicit
        collection per chunk would instead advance the older generations' counters and bring
        on full collections).
        """
        if settle:
            gc.collect()
        # A process that froze its own heap already keeps it as it is (unfreezing afterwards
        # would undo what the user froze).
        frozen = self.settings.freeze_heap and gc.isenabled() and gc.get_freeze_count() == 0
        if frozen:
            gc.freeze()
        try:
            yield
        finally:
            if frozen:
                gc.unfreeze()

    def _rounds(self, candidates: list[Candidate], rounds: int, within_budget: bool) -> None:
        n = len(candidates)
        for _ in range(rounds):
            if within_budget and self.spent_s + self.round_seconds() > self.settings.budget_s:
                return
            self.before_round()
            start_index = len(candidates[0].samples) % n
            order = candidates[start_index:] + candidates[:start_index]
            clock = self._machine_wait
            others_before = self._others.cpu_seconds() if clock is not None else None
            cpu_start = thread_clock()
            round_start = time.perf_counter()
            per_call: dict[int, list[float]] = {id(c): [] for c in order}
            waited: dict[int, list[float]] = {id(c): [] for c in order}
            for cand, chunks in _schedule(order, self.interleave):
                with compile_log() as log:
                    times, lost = cand.instrument.time_chunks_waited(
                        cand.fn, chunks, cand.group, clock
                    )
                per_call[id(cand)] += times
                waited[id(cand)] += lost
                cand.steady_compile.merge(log)
            wall_so_far = time.perf_counter() - round_start
            cpu_end = thread_clock()
            # The round's run-queue wait is the machine's only if nothing of the workload's
            # own (other threads, children) ran meanwhile: checked after every round, since
            # a callable may start a pool or a loader at any time.
            others_after = self._others.cpu_seconds() if clock is not None else None
            keep = (
                others_before is not None
                and others_after is not None
                and others_after - others_before <= IDLE_SHARE * wall_so_far
            )
            for cand in order:
                times = per_call[id(cand)]
                if keep:
                    lost = waited[id(cand)]
                    times = [t - w for t, w in zip(times, lost)]
                    cand.instrument.machine_wait_s += math.fsum(lost) * cand.group
                    cand.machine_wait_rounds += 1
                cand.chunk_s.extend(times)
                cand.cpu.add(cpu_start, cpu_end)
                # CUDA events time a whole round as one chunk: say what a tail is made of.
                cand.calls_per_timed_chunk = cand.iterations // len(times)
                if cand.statistic == "mean":
                    cand.samples.append(math.fsum(times) / len(times))
                else:
                    cand.samples.append(statistics.median(times))
            wall = time.perf_counter() - round_start
            self.round_walls.append(wall)
            self.spent_s += wall

    def round_seconds(self) -> float:
        """Expected wall time of one more round: the slowest of the last few rounds.

        From measured round walls (overheads and slow calls included), not from a per-call
        statistic, so a batch predicted to fit the budget does fit it.
        """
        return max(self.round_walls[-4:], default=0.0)

    def can_afford(self, candidates: list[Candidate], rounds: int) -> bool:
        return self.spent_s + rounds * self.round_seconds() <= self.settings.budget_s

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
        self.run_rounds(candidates, want, within_budget=True)
        return True
