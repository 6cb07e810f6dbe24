"""The collector during timed rounds: on, paid by the candidate that allocates, and never a
scan of the test process's own heap charged to whichever candidate crossed the threshold."""

from __future__ import annotations

import gc
import time

import pytest

from perfsuite._comparison import compare
from perfsuite._settings import Settings


def _promoter():
    """Allocates containers that live for up to 50 calls: they survive young collections, are
    promoted, and so bring on full collections every few dozen milliseconds."""
    live: list = []
    calls = iter(range(10**9))

    def fn():
        s = 0
        for i in range(1000):
            s ^= i
        live.extend([None] for _ in range(100))
        if next(calls) % 50 == 0:
            live.clear()

    return fn


@pytest.fixture
def big_heap():
    # What a test process holds before the rounds start (jax, pytest, the workloads' set-up):
    # a full collection of it takes tens of milliseconds, i.e. hundreds of calls above.
    heap = [[i] for i in range(600_000)]
    gc.collect()
    yield heap
    del heap
    gc.collect()


def test_no_collection_inside_the_rounds_scans_the_set_up_heap(big_heap):
    # Before `Settings.freeze_heap`, each full collection inside the rounds scanned the
    # whole test process (~70-150 ms here) and landed on whichever candidate crossed the
    # threshold: 60-round A/A comparisons of two identical candidates came out at 0.50x,
    # 1.30x, 1.35x. Checked here on the pauses themselves (collections are triggered by
    # allocation counts, so they happen on any machine; their length is what freezing
    # changes), not on a ratio, which would also carry the machine's noise.
    start = time.perf_counter()
    gc.collect()
    full_scan_s = time.perf_counter() - start
    # `before_round` is called once per candidate before its warm-up (perfsuite ab's turns
    # cover warm-up too), then before every round: the rounds start at its third call.
    state = {"in_rounds": False, "start": 0.0, "hooks": 0}
    pauses = []

    def timer(phase, info):
        if info["generation"] != 2 or not state["in_rounds"]:
            return
        if phase == "start":
            state["start"] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - state["start"])

    gc.callbacks.append(timer)
    try:
        compare(
            a=_promoter(),
            b=_promoter(),
            settings=Settings(min_rounds=60),
            before_round=lambda: state.update(
                hooks=state["hooks"] + 1, in_rounds=state["hooks"] >= 2
            ),
        )
    finally:
        gc.callbacks.remove(timer)
    assert pauses, "no full collection inside the rounds: the test is void"
    assert max(pauses) < full_scan_s / 4, (max(pauses), full_scan_s, len(pauses))


def test_collector_stays_on_and_heap_is_frozen_only_during_rounds():
    seen = []
    calls = iter(range(10**9))

    def fn():
        if next(calls) % 200 == 0:  # `get_freeze_count` walks the frozen heap: not every call
            seen.append((gc.isenabled(), gc.get_freeze_count() > 0))

    compare(a=fn, b=fn, settings=Settings(budget_s=0.5, min_rounds=2))
    assert (True, True) in seen  # in rounds: collector on, set-up heap frozen
    assert gc.get_freeze_count() == 0  # and unfrozen afterwards

    seen.clear()
    compare(a=fn, b=fn, settings=Settings(budget_s=0.5, min_rounds=2, freeze_heap=False))
    assert all(frozen is False for _, frozen in seen)


def test_a_heap_the_user_froze_stays_frozen():
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        compare(a=lambda: None, b=lambda: None, settings=Settings(budget_s=0.5, min_rounds=2))
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()
