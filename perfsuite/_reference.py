"""The machine-speed reference: perfsuite-owned kernels timed between a test's rounds.

Why: whole pytest sessions of identical code differ by far more than the rounds inside one
session (docs/calibration-baseline.md: 0.65x-1.81x on a quiet 2-core VM, up to 3x under
load). Measured, that shift is the *machine's*: in 90 processes each timing a pure-Python
loop, a matrix-product chain and two unrelated kernels in interleaved rounds, the log
per-process times of all four correlated at 0.8-0.95, and fixing the hash seed and address
layout (`PYTHONHASHSEED=0 setarch -R`) left the spread as it was (docs/calibration-baseline.md,
"Run 5"). So a kernel that perfsuite owns, timed interleaved with the workload, slows down
with it, and the workload's time *relative* to the reference varies about half as much from
session to session as its time alone.

What it is: before every round (the engine's `before_round` hook, which `perf.steps` calls
per step) one *sample* times two small kernels back to back, an interpreter-bound integer
loop and a numpy kernel (sort, elementwise, cumulative sum; no BLAS, so its speed does not
depend on the workload's BLAS threads settings), about 0.05 ms each. The sample is their
geometric mean. Samples are at least `MIN_GAP_S` apart (per-step calls would otherwise
cost more than the steps); each measurement keeps the samples taken while it ran.

Neither kernel allocates a container object (ints and ndarrays are not tracked by the
cyclic collector; the numpy kernel writes into preallocated buffers), so sampling between
rounds never moves the collector's counters and never brings a collection into the
workload's timed calls.

What the reference cannot tell apart from the machine: anything that slows the reference
too, i.e. a change to the interpreter, numpy, the environment (e.g. `PYTHONMALLOC=debug`,
CPU affinity), or a workload that leaves threads running between its rounds. The gate
therefore also reports the un-normalised ratio and the reference's own ratio
(`perfsuite._baseline_judge`).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np


#: Identifies the kernels below: numbers of different kernels are never compared (the gate
#: falls back to un-normalised times when a baseline's `kernel` differs).
KERNEL = "int-loop-600+numpy-sort-2048/v1"
#: Fewest seconds between two samples (from the end of one to the start of the next): one
#: per round of `--perf-quick` (>= 5 ms of rounds), at most ~5% of the wall time of
#: per-step sampling.
MIN_GAP_S = 0.004

_N_LOOP = 600
_N_VEC = 2048
_rng = np.random.default_rng(20261202)
_SOURCE = _rng.standard_normal(_N_VEC)
_BUF = np.empty(_N_VEC)
_OUT = np.empty(_N_VEC)


def _python_kernel() -> int:
    # Integer arithmetic and a branch: interpreter dispatch, no container allocation.
    s = 0
    for i in range(_N_LOOP):
        if i & 3:
            s += i * 7
        else:
            s -= i
    return s


def _numpy_kernel() -> float:
    np.copyto(_BUF, _SOURCE)
    _BUF.sort()
    np.multiply(_BUF, 1.0001, out=_OUT)
    np.cumsum(_OUT, out=_OUT)
    return float(_OUT[-1])


def time_kernels() -> tuple[float, float]:
    """Seconds of one run of each kernel (python, numpy)."""
    t0 = time.perf_counter()
    _python_kernel()
    t1 = time.perf_counter()
    _numpy_kernel()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


class Reference:
    """Samples the reference between rounds and hands each measurement its samples."""

    def __init__(self, min_gap_s: float = MIN_GAP_S):
        self.min_gap_s = min_gap_s
        # Two lists of floats, not a list of tuples: a tuple is a container the collector
        # tracks, a float is not (see the module docstring).
        self._python: list[float] = []
        self._numpy: list[float] = []
        self._last_end = -math.inf
        self._clock: tuple[float, float, float] | None = None
        # Warm both kernels once (imports, first-call costs), outside any measurement.
        for _ in range(3):
            time_kernels()

    def sample(self) -> None:
        """One sample, unless the previous one ended less than `min_gap_s` ago."""
        now = time.perf_counter()
        if now - self._last_end < self.min_gap_s:
            return
        t0 = time.perf_counter()
        _python_kernel()
        t1 = time.perf_counter()
        _numpy_kernel()
        t2 = time.perf_counter()
        self._python.append(t1 - t0)
        self._numpy.append(t2 - t1)
        self._last_end = t2

    def take(self) -> dict[str, Any] | None:
        """The samples since the last `take` as a measurement's `reference` entry (None when
        there are none), and start afresh for the next measurement."""
        python, numpy_ = self._python, self._numpy
        self._python, self._numpy = [], []
        if not python:
            return None
        return {
            "kernel": KERNEL,
            "python_s": python,
            "numpy_s": numpy_,
            # The geometric mean of the two: one machine-speed number per sample.
            "samples_s": [math.sqrt(p * n) for p, n in zip(python, numpy_)],
        }

    def begin(self) -> None:
        """A test starts: drop what an earlier test left unclaimed, start its CPU clock."""
        self.take()
        self._clock = thread_clock()

    def attach(self, measurements: list[dict[str, Any]]) -> None:
        """Give one test's timed measurements the samples taken while the test ran, and the
        share of the test's time its thread spent computing (`cpu_share`).

        Per test, not per measurement: a comparison is recorded when it starts and gets its
        later rounds from assertions, so the test is the span that surely holds its rounds.
        The test's share is only the fallback of the gate: it includes perfsuite's own
        untimed work (first call, warm-up, memory and count readings), which is CPU work
        even for a callable that sleeps. Each candidate carries the share of its timed
        rounds (`CpuShare`), and the gate reads that first (`perfsuite._results`).
        """
        entry = self.take()
        if entry is None:
            return
        entry["cpu_share"] = cpu_share_of(self._clock, thread_clock())
        for m in measurements:
            if m.get("kind") in TIMED_KINDS:
                m["reference"] = entry


#: Kinds of measurement with timed rounds (those `before_round` is called for).
TIMED_KINDS = ("measure", "steps", "compare")


def _machine_steal() -> float:
    """Seconds the hypervisor gave this VM's CPUs to other guests so far, per CPU (0 where
    `/proc/stat` is missing): stolen time is neither the thread's CPU time nor its run-queue
    wait, so without it a CPU-bound thread on a busy host reads as partly idle."""
    try:
        with open("/proc/stat") as fh:
            steal = int(fh.readline().split()[8])
        return steal / os.sysconf("SC_CLK_TCK") / (os.cpu_count() or 1)
    except (OSError, ValueError, IndexError):
        return 0.0


def thread_clock() -> tuple[float, float, float] | None:
    """(wall, on-CPU, run-queue wait + stolen) seconds of this thread so far:
    `/proc/thread-self/schedstat` on Linux; elsewhere the thread's CPU time and no wait (None
    on failure). Stolen time is the machine's per-CPU average (`_machine_steal`)."""
    wall = time.perf_counter()
    try:
        with open("/proc/thread-self/schedstat") as fh:
            cpu_ns, wait_ns = fh.read().split()[:2]
        return wall, int(cpu_ns) * 1e-9, int(wait_ns) * 1e-9 + _machine_steal()
    except (OSError, ValueError):
        try:
            return wall, time.thread_time(), 0.0
        except OSError:
            return None


def cpu_share_of(start: tuple[float, float, float] | None, end: tuple[float, float, float] | None):
    """Share of the span the thread computed, of the time it could have (wall time less its
    run-queue wait and the machine's stolen time, so a loaded machine does not make CPU-bound
    code look idle): ~1 for code whose time is the CPU's work, ~0 for code that sleeps, waits
    on I/O or on a device. None where a reading is missing."""
    span = CpuShare()
    span.add(start, end)
    return span.share


class CpuShare:
    """The share of timed spans the thread spent computing, summed over spans (a candidate's
    rounds): `add(start, end)` with two `thread_clock()` readings taken around a span.

    Over the rounds only, not the test: perfsuite's own work between rounds (warm-up, the
    memory and count readings, under `setprofile`) is CPU work whatever the callable does,
    and on a slow machine it outweighs the rounds of a callable that sleeps.
    """

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.available_s = 0.0

    def add(self, start: tuple[float, float, float] | None, end: tuple[float, float, float] | None):
        if start is None or end is None:
            return
        available = (end[0] - start[0]) - (end[2] - start[2])
        if available > 0:
            self.cpu_s += max(0.0, end[1] - start[1])
            self.available_s += available

    @property
    def share(self) -> float | None:
        """In [0, 1]; None before any span (or where the thread's clock cannot be read)."""
        if self.available_s <= 0:
            return None
        return min(1.0, self.cpu_s / self.available_s)


def reference_seconds(samples: tuple[float, ...] | list[float]) -> float | None:
    """One session's reference for one measurement: the median of its samples."""
    x = [v for v in samples if v > 0 and math.isfinite(v)]
    return float(np.median(x)) if x else None
