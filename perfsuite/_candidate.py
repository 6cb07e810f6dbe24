"""`Candidate`: one named callable under measurement, and everything measured about it.

The engine (`perfsuite._engine`) fills it in: the first call apart, the calibrated rounds'
samples, every chunk's time (for the tails, `tails_of`), the memory and counts of one
untimed call, the CPU share of its rounds. `Candidate.as_dict` is a candidate's entry in
the results document, the one place that writes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._compile import CompileLog
from ._memory import MemoryStats
from ._reference import CpuShare
from .instruments import Instrument


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
    #: Per-round sample: `mean` (total time / calls) or `median` (of the round's chunks).
    statistic: str = "mean"
    samples: list[float] = field(default_factory=list)
    #: Seconds per call of every chunk of every round, in order (for the tails).
    chunk_s: list[float] = field(default_factory=list)
    #: Calls in each timed chunk (`group`, or the whole round for instruments that time a
    #: round as one piece).
    calls_per_timed_chunk: int = 1
    #: Rounds whose machine run-queue wait was subtracted (see `_machine_wait`).
    machine_wait_rounds: int = 0
    steady_compile: CompileLog = field(default_factory=CompileLog)
    #: Memory one call needs (`perfsuite._memory`): one untimed call after the warm-up.
    memory: MemoryStats | None = None
    #: Exact counts of one call (`perfsuite._counts`), taken after warm-up; None when off.
    counts: Any = None
    #: `perfsuite calibrate`'s injected slowdown factor of the timed calls (None: none).
    injected_slowdown: float | None = None
    #: Share of its timed rounds the thread spent computing (the baseline gate normalises
    #: by the machine-speed reference only CPU-bound series). Interleaved candidates share
    #: their rounds, so a comparison's candidates read the share of the rounds they ran in.
    cpu: CpuShare = field(default_factory=CpuShare)

    @property
    def iterations(self) -> int:
        """Calls per round."""
        return self.group * self.chunks

    @property
    def retraces(self) -> int:
        """Compilations after warm-up: each one means the callable was traced again."""
        return self.steady_compile.compilations

    @property
    def per_call_s(self) -> float:
        """The statistic over all rounds: mean cost per call, or the median round."""
        if not self.samples:
            return math.nan
        if self.statistic == "mean":
            # Every round has the same number of calls, so the mean of the round means is
            # the total time over the total calls.
            return float(np.mean(self.samples))
        return float(np.median(self.samples))

    def tails(self) -> dict[str, Any]:
        """Quantiles of the chunk times (seconds per call), so a stall shows whatever the
        statistic. A chunk is `calls_per_chunk` calls: with one call per chunk (calls of
        50 us and more) these are the quantiles of single calls."""
        return tails_of(self.chunk_s, calls_per_chunk=self.calls_per_timed_chunk)

    def as_dict(self) -> dict[str, Any]:
        from ._stats import Summary

        return {
            "name": self.name,
            "instrument": self.instrument.describe(),
            "statistic": self.statistic,
            "per_call_s": self.per_call_s,
            "iterations_per_round": self.iterations,
            "calls_per_chunk": self.group,
            "first_call_s": self.first_call_s,
            "compile": self.first_compile.as_dict(),
            "retraces": self.retraces,
            # Seconds of run-queue wait (the machine's, not the workload's) taken out, and
            # in how many rounds (the others were timed as measured).
            "machine_wait_s": self.instrument.machine_wait_s,
            "machine_wait_rounds": self.machine_wait_rounds,
            "stats": Summary.of(self.samples).as_dict(),
            "tails": self.tails(),
            "samples_s": list(self.samples),
            "cpu_share": self.cpu.share,
            **({"memory": self.memory.as_dict()} if self.memory is not None else {}),
            **self._counts_dict(),
            **({"injected_slowdown": self.injected_slowdown} if self.injected_slowdown else {}),
        }

    def _counts_dict(self) -> dict[str, Any]:
        """`counts` and `roofline` (achieved FLOP/s and bytes/s beside the time)."""
        if self.counts is None:
            return {}
        from ._roofline import roofline

        counts = self.counts.to_json()
        return {"counts": counts, "roofline": roofline(counts, self.per_call_s)}


#: Quantiles reported as a candidate's tails (and a training loop's step times).
TAIL_QUANTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))


def tails_of(seconds: list[float] | tuple[float, ...], **extra: Any) -> dict[str, Any]:
    """`{"p50", "p90", "p99", "max", "count"}` of `seconds` (None where there are none)."""
    x = np.asarray(seconds, dtype=float)
    out: dict[str, Any] = {key: None for key, _ in TAIL_QUANTILES}
    out["max"] = None
    if x.size:
        for (key, _), value in zip(
            TAIL_QUANTILES, np.percentile(x, [q for _, q in TAIL_QUANTILES])
        ):
            out[key] = float(value)
        out["max"] = float(x.max())
    return {**out, "count": int(x.size), **extra}
