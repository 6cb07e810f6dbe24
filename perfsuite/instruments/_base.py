"""The instrument interface shared by every backend."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from typing import Any

from .._errors import PerfUsageError as PerfUsageError


def iter_leaves(tree: Any):
    """Leaves of nested tuples/lists/dicts (and JAX pytrees when JAX is loaded)."""
    import inspect
    import sys

    if inspect.isgenerator(tree):
        # Lazy: nothing has run yet, so nothing to wait for (the engine warns about it).
        return
    if "jax" in sys.modules:
        import jax

        yield from jax.tree_util.tree_leaves(tree)
        return
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif node is not None:
            yield node


class Instrument(abc.ABC):
    """Times `iterations` calls of a zero-argument callable, each ending with its work done."""

    #: Name written to results and the report.
    name: str = "abstract"
    #: Whether a round may time this instrument's chunks one at a time, interleaved with
    #: other candidates' (False where a round is timed as one piece on the device).
    interleavable: bool = True
    #: Seconds of run-queue wait subtracted so far (kept rounds only; set by the engine).
    machine_wait_s: float = 0.0

    @abc.abstractmethod
    def wait(self, output: Any) -> None:
        """Block until the work that produced `output` has finished."""

    def time_calls(self, fn: Callable[[], Any], iterations: int) -> tuple[float, Any]:
        """Seconds for `iterations` calls of `fn`, each waited for; returns the last output.

        Waiting after every call (not once per round) makes a sample the cost of one
        complete call, which is what a step time or a transform time means. Pipelined
        throughput is measured by a callable that itself runs a loop and returns the end.
        """
        out = None
        start = time.perf_counter()
        for _ in range(iterations):
            out = fn()
            self.wait(out)
        return time.perf_counter() - start, out

    def time_chunks_waited(
        self, fn: Callable[[], Any], chunks: int, group: int, clock: Any
    ) -> tuple[list[float], list[float]]:
        """`time_chunks`, with each chunk's run-queue wait per call beside it (zeros where
        `clock` is None or this instrument times on the device)."""
        if clock is None or type(self).time_calls is not Instrument.time_calls:
            per_call = self.time_chunks(fn, chunks, group)
            return per_call, [0.0] * len(per_call)
        per_call, waited = [], []
        for _ in range(chunks):
            before = clock.seconds()
            seconds, _ = self.time_calls(fn, group)
            # Time the thread was runnable but the machine gave its CPU to someone else.
            lost = min(max(clock.seconds() - before, 0.0), seconds)
            per_call.append(seconds / group)
            waited.append(lost / group)
        return per_call, waited

    def time_chunks(self, fn: Callable[[], Any], chunks: int, group: int) -> list[float]:
        """Seconds per call for each of `chunks` groups of `group` calls.

        A round is split into chunks so that the round's statistic can be their median: a
        chunk hit by preemption or a page fault on a busy machine is one outlier among
        many rather than a shift of the whole round.
        """
        per_call = []
        for _ in range(chunks):
            seconds, _ = self.time_calls(fn, group)
            per_call.append(seconds / group)
        return per_call

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}
