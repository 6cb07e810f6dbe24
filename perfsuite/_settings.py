"""Settings of one measurement: options, marker keywords and `--perf-quick`, resolved once."""

from __future__ import annotations

from dataclasses import dataclass


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

    @classmethod
    def quick(cls, **overrides) -> Settings:
        """`--perf-quick`: shorter everything, same confidence level (verdicts stay honest)."""
        base = dict(budget_s=5.0, min_rounds=8, target_round_s=0.005, warmup_s=0.02, measure_s=0.2)
        base.update(overrides)
        return cls(**base)
