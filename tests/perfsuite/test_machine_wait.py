"""The machine's run-queue wait is taken out of timed sections, and nothing of the workload's."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest
from _workloads import spin

from perfsuite._comparison import compare
from perfsuite._settings import Settings
from perfsuite.instruments import HostInstrument
from perfsuite.instruments._machine_wait import MachineWait, OtherThreads


needs_schedstat = pytest.mark.skipif(
    not MachineWait().available, reason="no /proc/thread-self/schedstat on this system"
)


class FakeClock:
    """A run-queue clock that says the machine took `lost` seconds during every chunk."""

    def __init__(self, lost: float):
        self.lost, self.now = lost, 0.0

    def seconds(self) -> float:
        self.now += self.lost  # read before and after each chunk: `lost` between the two
        return self.now


def test_each_chunk_loses_what_the_machine_took_and_never_more_than_its_time():
    inst = HostInstrument()
    per_call, waited = inst.time_chunks_waited(lambda: time.sleep(0.002), 3, 1, FakeClock(0.001))
    assert len(per_call) == len(waited) == 3
    assert all(w == pytest.approx(0.001) for w in waited)
    per_call, waited = inst.time_chunks_waited(lambda: None, 2, 1, FakeClock(10.0))
    assert all(w <= t for w, t in zip(waited, per_call))  # capped at the chunk's own time
    _, none = inst.time_chunks_waited(lambda: None, 2, 1, None)
    assert none == [0.0, 0.0]


@needs_schedstat
def test_a_sleeping_call_is_not_corrected_away():
    # A sleep is a voluntary wait (like a host sync or I/O): it stays in the time.
    cmp = compare(settings=Settings(budget_s=2.0), a=lambda: time.sleep(0.002), b=spin(2_000))
    a = cmp.candidates["a"]
    assert a.per_call_s > 0.0019
    assert a.instrument.machine_wait_s < 0.5 * a.per_call_s * a.iterations * cmp.rounds


@needs_schedstat
def test_rounds_with_busy_threads_of_the_workload_stand_as_measured():
    # A thread of the workload's own that computes meanwhile may be what delays the timed
    # thread: that is the workload's cost, so those rounds are not corrected.
    stop = threading.Event()

    def burn():
        while not stop.is_set():
            sum(range(1000))

    worker = threading.Thread(target=burn, daemon=True)
    worker.start()
    try:
        cmp = compare(settings=Settings(budget_s=1.0, min_rounds=4), a=spin(), b=spin())
    finally:
        stop.set()
        worker.join()
    assert all(c.machine_wait_rounds == 0 for c in cmp.candidates.values())
    assert all(c.instrument.machine_wait_s == 0.0 for c in cmp.candidates.values())


def _hog(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@needs_schedstat
def test_an_a_a_comparison_stays_quiet_with_every_cpu_taken_by_a_neighbour():
    # The neighbours are separate processes (not this process's children): the machine.
    cpus = len(os.sched_getaffinity(0))
    ctx = multiprocessing.get_context("spawn")
    hogs = [ctx.Process(target=_hog, args=(60.0,)) for _ in range(cpus)]
    for h in hogs:
        h.start()
    try:
        time.sleep(0.5)
        # The hogs are this process's children, which would (rightly) veto the correction
        # here: the comparison runs in a sibling process, to which they are the machine.
        result = ctx.Queue()
        probe = ctx.Process(target=_a_a_trial, args=(result,))
        probe.start()
        verdict, kept, rounds = result.get(timeout=120)
        probe.join()
    finally:
        for h in hogs:
            h.kill()
    assert kept == rounds > 0
    assert verdict == "pass"


def _a_a_trial(result) -> None:
    from perfsuite._errors import PerfFailure

    cmp = compare(settings=Settings(budget_s=10.0), fast=spin(), ref=spin())
    try:
        cmp.assert_no_slower("fast", than="ref", tolerance=0.05)
        verdict = "pass"
    except PerfFailure as exc:
        verdict = str(exc)
    kept = min(c.machine_wait_rounds for c in cmp.candidates.values())
    result.put((verdict, kept, cmp.rounds))


def test_other_threads_are_read_or_refused():
    assert OtherThreads().cpu_seconds() is None or OtherThreads().cpu_seconds() >= 0.0
