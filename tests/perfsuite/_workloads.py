"""Small callables of known cost for the engine's tests."""

from __future__ import annotations

import itertools
import time


def stalling(every: int = 10, stall_s: float = 0.015, base_s: float = 0.001):
    """A callable where one call in `every` stalls for `stall_s` (the others take `base_s`):
    the shape of a collection, an allocator growing or a data-loader hiccup."""
    counter = itertools.count()

    def fn():
        time.sleep(stall_s if next(counter) % every == every - 1 else base_s)

    return fn


def steady(base_s: float = 0.001):
    def fn():
        time.sleep(base_s)

    return fn


def spin(n: int = 20_000):
    def fn():
        s = 0
        for i in range(n):
            s ^= i
        return s

    return fn
