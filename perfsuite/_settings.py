"""Settings of one measurement: options, marker keywords and `--perf-quick`, resolved once."""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import PerfUsageError
from ._values import Statistic, words


#: What one round's sample of a candidate is (`statistic=`): `mean` is the total time of the
#: round's calls divided by the calls, i.e. what a user pays per call, slow calls included;
#: `median` is the median over the round's chunks, for claims about the *typical* call.
STATISTICS = tuple(words(Statistic))


def check_statistic(value: object, arg: str = "statistic") -> str:
    """`value` if it names a statistic, else a `ValueError` naming `arg` and the choices."""
    if value not in STATISTICS:
        raise PerfUsageError(f"`{arg}` must be one of {list(STATISTICS)}, got {value!r}.")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class Settings:
    """How long and how carefully to measure. Built per test from config + marker."""

    #: Seconds of timed rounds one comparison (or measurement) may spend before it must decide.
    budget_s: float = 20.0
    #: Rounds run before the first look at the data (and the fewest a measurement reports).
    min_rounds: int = 10
    #: Target wall time of one candidate's share of a round.
    target_round_s: float = 0.01
    #: Minimum warm-up time per candidate after the first call.
    warmup_s: float = 0.05
    #: Seconds `perf.measure` keeps adding rounds once `min_rounds` are in.
    measure_s: float = 1.0
    #: Two-sided confidence level of every interval.
    level: float = 0.99
    #: Forced instrument name, or None for automatic selection.
    instrument: str | None = None
    #: Per-round sample of each candidate: one of `STATISTICS`.
    statistic: str = "mean"
    #: Fewest calls in one candidate's share of a round (while it stays under `max_round_s`):
    #: a round's mean sees a slow call that comes once in every few calls only if the round
    #: holds several such stretches, whatever `target_round_s` gives for a slow callable.
    min_round_calls: int = 20
    #: Longest share of a round that `min_round_calls` may ask for (slower callables get
    #: fewer calls per round, down to one).
    max_round_s: float = 0.05

    #: Interleave the candidates' chunks within a round (False: each candidate's share of
    #: a round back to back, as before; kept for calibration runs that compare the two).
    interleave: bool = True
    #: Subtract the time the machine kept a single-threaded process off its CPU (Linux
    #: run-queue delay; see `perfsuite.instruments._machine_wait`).
    subtract_machine_wait: bool = True
    #: Move every object that exists when timed rounds start into the collector's permanent
    #: generation (`gc.freeze`), for the rounds' duration. The collector stays on: each
    #: candidate pays the collections its own allocations bring on, but a full collection
    #: scans what the candidates made, not the test process's heap (jax, pytest, the
    #: workloads' set-up). Without it one full scan of that heap (130 ms for BERT-12L's
    #: test process on a 2-core runner) lands on whichever candidate happens to cross the
    #: threshold, and side-by-side candidates trade those pauses at random.
    freeze_heap: bool = True
    #: Count every candidate's work in untimed calls after warm-up (`perfsuite._counts`):
    #: four calls (two with JAX/torch absent), and with JAX one more of each candidate
    #: before the first round (the counting cleared JAX's fast-path caches).
    counts: bool = True

    def __post_init__(self) -> None:
        check_statistic(self.statistic)

    @classmethod
    def quick(cls, **overrides) -> Settings:
        """`--perf-quick`: shorter everything, same confidence level (verdicts stay honest)."""
        base = dict(
            budget_s=5.0,
            min_rounds=8,
            target_round_s=0.005,
            warmup_s=0.02,
            measure_s=0.2,
            max_round_s=0.025,
        )
        base.update(overrides)
        return cls(**base)
