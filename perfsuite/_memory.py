"""Memory as a metric: how much one call needs, measured once, outside the timed rounds.

`MemoryStats` says how much one call of a callable needs: `peak_bytes`, the most in use
during the call above what was in use just before it, and `retained_bytes`, what is in use
after it (its result still held) minus before. `source` says how it was measured and `exact`
whether two measurements of the same call must agree to the byte (allocator rounding aside).

The sources and the order they are chosen in are told in `perfsuite._memory_sources`;
`MemoryStats` and the gate's rule are `perfsuite._memory_stats`, re-exported here.

The measured call is one extra, untimed call per candidate, after its warm-up (so compilation
and allocator warm-up are not counted) and never inside a timed round; `perf.steps` measures
the peak over its timed steps by reading the counters before and after them (nothing runs per
step). `HOST_RSS_TOLERANCE` and the gate's rules are in `check_growth`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from ._errors import PerfFailure, PerfUsageError
from ._memory_sources import JAX_BALLAST_FRACTION as JAX_BALLAST_FRACTION
from ._memory_sources import _runtime_source
from ._memory_stats import HOST_RSS_SLACK_BYTES as HOST_RSS_SLACK_BYTES
from ._memory_stats import HOST_RSS_TOLERANCE as HOST_RSS_TOLERANCE
from ._memory_stats import MemoryStats as MemoryStats
from ._memory_stats import allowed_growth as allowed_growth
from ._memory_stats import check_growth as check_growth
from ._memory_stats import memory_message as memory_message
from ._values import MemorySource, fmt_bytes, parse_size_arg


def measure_call(
    fn: Callable[[], Any], instrument: Any, wait: Callable[[Any], None] | None = None
) -> MemoryStats | None:
    """One untimed call of `fn`, its memory measured by the source its instrument implies.

    `instrument` is an `Instrument` (its `name` and `wait` are used) or a name. None where no
    source exists on this machine. The young generations are collected first, so garbage
    the warm-up left is not freed inside the call (its pages reused, hiding part of the peak
    on the host); not a full collection, which scans the whole heap (0.18 s in a test process
    with JAX and torch loaded, on the CI VM) and would cost more than most candidates' calls.
    """
    name = getattr(instrument, "name", instrument)
    wait = wait or getattr(instrument, "wait", None) or (lambda out: None)
    src = _runtime_source(name)
    if src is None:
        return None
    gc.collect(1)
    src.begin()
    try:
        out = fn()
        wait(out)
    finally:
        stats = src.end()  # frees a jax-device ballast even when the call raised
    del out
    return stats


class Watch:
    """Peak over a stretch of calls (`perf.steps`' timed steps): counters read around it."""

    def __init__(self, instrument: str | None):
        self._src = _runtime_source(instrument)

    def __enter__(self) -> Watch:
        if self._src is not None:
            self._src.begin()
        self.stats: MemoryStats | None = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._src is not None:
            stats = self._src.end()  # also frees a jax-device ballast when the steps raised
            self.stats = stats if exc[0] is None else None


def analyse_jitted(f: Any, *args: Any, **kwargs: Any) -> MemoryStats:
    """XLA's static `memory_analysis()` of jitted `f` compiled for `args` (nothing runs)."""
    try:
        compiled = f.lower(*args, **kwargs).compile()
    except Exception as exc:
        raise PerfUsageError(
            f"`fn` could not be lowered and compiled for the arguments given ({exc}); "
            "`perf.memory(f, *args)` needs `f = jax.jit(...)` and the arguments of one call."
        ) from exc
    # `eqx.filter_jit`'s `Compiled` wraps jax's (`.compiled`) without its methods.
    inner = getattr(compiled, "compiled", compiled)
    analysis = getattr(inner, "memory_analysis", None)
    ma = analysis() if callable(analysis) else None
    if ma is None:
        raise PerfUsageError("`fn`: this backend's executables have no `memory_analysis()`.")
    arg, out, alias = ma.argument_size_in_bytes, ma.output_size_in_bytes, ma.alias_size_in_bytes
    temp = ma.temp_size_in_bytes
    return MemoryStats(
        out + temp - alias,
        out - alias,
        MemorySource.XLA_MEMORY_ANALYSIS,
        True,
        {
            "argument_bytes": arg,
            "output_bytes": out,
            "alias_bytes": alias,
            "temp_bytes": temp,
            "code_bytes": ma.generated_code_size_in_bytes,
        },
    )


def is_jitted(fn: Any) -> bool:
    return callable(getattr(fn, "lower", None))


def memory_of(fn: Callable[..., Any], args: tuple, kwargs: dict, source: str | None) -> MemoryStats:
    """`perf.memory`'s measurement: static analysis for jitted `fn`, else a warm-up call and
    one measured call (the first call of a JAX or torch function compiles and allocates
    caches that are not what a call needs)."""
    from .instruments import select_instrument

    if source is not None:
        source = MemorySource(parse_source(source))
    if source == MemorySource.XLA_MEMORY_ANALYSIS or (source is None and is_jitted(fn)):
        if not is_jitted(fn):
            raise PerfUsageError(
                f"`source`={str(source)!r} needs a jitted function (`jax.jit(f)`), got {fn!r}."
            )
        return analyse_jitted(fn, *args, **kwargs)
    if not callable(fn):
        raise PerfUsageError(f"`fn` must be callable, got {fn!r}.")

    def call():
        return fn(*args, **kwargs)

    out = call()
    inst = select_instrument(out)
    inst.wait(out)
    del out
    if source is not None:
        instrument = {
            MemorySource.TORCH_CUDA: "torch-cuda",
            MemorySource.JAX_DEVICE: "jax",
            MemorySource.HOST_RSS: "host",
        }[source]
        src = _runtime_source(instrument)
        if src is None or src.name != source:
            raise PerfUsageError(f"`source`={str(source)!r} is not available on this machine.")
    stats = measure_call(call, inst.name if source is None else instrument, inst.wait)
    if stats is None:
        raise PerfUsageError(
            "no memory source on this machine (no CUDA, no JAX device stats, no "
            "/proc/self/clear_refs, no psutil)."
        )
    return stats


def parse_source(value: Any) -> str:
    try:
        return MemorySource(value).value
    except ValueError:
        raise PerfUsageError(
            f"`source` must be one of {[s.value for s in MemorySource]}, got {value!r}."
        ) from None


def check_at_most(stats: MemoryStats, at_most: Any, name: str) -> None:
    """`perf.memory(..., at_most=)`: fail with the numbers when the peak exceeds it."""
    __tracebackhide__ = True
    if at_most is None:
        return
    limit = parse_size_arg(at_most, "at_most")
    slack = allowed_growth(stats, 0.0, limit)
    if stats.peak_bytes > limit + slack:
        rule = f"required peak <= {fmt_bytes(limit)} ({limit} bytes)"
        if slack:
            rule += f" + {fmt_bytes(slack)} tolerance of an inexact source"
        raise PerfFailure(f"`memory` {name}: {stats}: peak {stats.peak_bytes} bytes; {rule}.")
