"""Memory as a metric: how much one call needs, measured once, outside the timed rounds.

`MemoryStats` says how much one call of a callable needs: `peak_bytes`, the most in use
during the call above what was in use just before it, and `retained_bytes`, what is in use
after it (its result still held) minus before. `source` says how it was measured and `exact`
whether two measurements of the same call must agree to the byte (allocator rounding aside).

Sources, in the order they are chosen (`_runtime_source`, from the instrument the output picked):

- `torch-cuda`: `torch.cuda.reset_peak_memory_stats` / `max_memory_allocated` around the call,
  the caching allocator's own count of the bytes its tensors hold (reserved bytes, what the
  allocator took from the driver, reported beside it in `extra`). Exact.
- `jax-device`: `Device.memory_stats()` of the default backend's local devices (GPU, TPU).
  Its `peak_bytes_in_use` never resets within a process, so the peak of one call is known
  only when the call sets a *new* high-water mark. perfsuite makes sure it does: before the
  call it allocates a ballast of `mark - in use` bytes, so that in use *is* the mark and
  anything the call allocates raises it; `mark after - in use before` is then the call's
  peak, exactly, and the ballast is freed after the call (`_JaxDevice`). Its limit: the
  ballast is only taken while it is at most `JAX_BALLAST_FRACTION` (25%) of the device's
  `bytes_limit`, so a call that needs nearly all of the device is not pushed out of memory
  by the measurement; otherwise the reading is the upper bound `mark - in use`,
  `exact=False` and `extra["peak_is_upper_bound"] = 1`, and the gate does not judge it. The
  exact alternative for JAX on any backend is `perf.memory(jitted, *args)`
  (`xla-memory-analysis`). Backends whose `memory_stats()` is `None` (XLA:CPU) fall back to
  `host-rss`.
- `xla-memory-analysis`: XLA's static `memory_analysis()` of the executable a jitted function
  compiles to for given arguments, on every backend (the CPU included): nothing is run, so it
  is exact and noise-free. The arguments are in use before the call; the call adds its outputs
  and temporaries, minus the outputs that reuse donated argument buffers (aliases):
  `peak = output + temp - alias`, `retained = output - alias`. Point perfsuite at it with
  `perf.memory(f, *args, name=...)` where `f` is a `jax.jit` or `eqx.filter_jit` function
  (anything with `.lower(*args)`, e.g. trainfast's train steps of every dispatcher). A zero-argument lambda around a jitted call cannot be analysed this way (what it
  closes over is not known): candidates of `measure`/`compare` use the runtime sources.
- `host-rss`: the process's resident set on the host (torch CPU, NumPy, XLA:CPU). On Linux,
  writing `5` to `/proc/self/clear_refs` resets the high-water mark `VmHWM` to the current
  RSS, so `VmHWM` after the call minus `VmRSS` before is the call's peak of *new* resident
  pages. Not exact: memory the allocator reuses without the kernel (small blocks, pools)
  does not show, and another thread's allocations do; `HOST_RSS_TOLERANCE` is its calibrated
  noise (docs/calibration-memory.md). Without `clear_refs` (not Linux), `psutil` is sampled
  every millisecond from a thread; without either, there is no host source.

The measured call is one extra, untimed call per candidate, after its warm-up (so compilation
and allocator warm-up are not counted) and never inside a timed round; `perf.steps` measures
the peak over its timed steps by reading the counters before and after them (nothing runs per
step). `HOST_RSS_TOLERANCE` and the gate's rules are in `check_growth`.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._errors import PerfFailure, PerfUsageError
from ._values import MemorySource, fmt_bytes, parse_size_arg


#: Relative tolerance of a `host-rss` reading. In the A/A calibration (100 calls of each
#: workload, in each of 4 processes, on the 2-core CI VM; docs/calibration-memory.md) no
#: reading of an allocation of 128-256 MiB was more than 0.1% from another, in-process or
#: across processes; 1% is ten times that and still sees a 2% growth of 256 MiB + slack.
HOST_RSS_TOLERANCE = 0.01
#: Absolute slack of a `host-rss` reading (bytes), for calls that allocate little (there,
#: one more pymalloc arena, 256 KiB, or a page table is the noise): the calibration's
#: largest spread, 1 MiB between XLA:CPU readings of one call, rounded up to 2 MiB.
HOST_RSS_SLACK_BYTES = 2 * 2**20


@dataclass(frozen=True)
class MemoryStats:
    """How much memory one call needs (see the module docstring for the sources)."""

    peak_bytes: int
    retained_bytes: int
    source: str
    exact: bool
    #: Source-specific numbers: `reserved_peak_bytes` (torch-cuda), XLA's sizes
    #: (`argument_bytes`, `output_bytes`, `alias_bytes`, `temp_bytes`, `code_bytes`),
    #: `peak_is_upper_bound` (jax-device).
    extra: dict[str, int] = field(default_factory=dict, hash=False, compare=False)

    @property
    def upper_bound_only(self) -> bool:
        """The peak is only an upper bound (jax-device below an earlier high-water mark)."""
        return bool(self.extra.get("peak_is_upper_bound"))

    def __str__(self) -> str:
        bound = "<= " if self.upper_bound_only else ""
        how = "exact" if self.exact else "inexact"
        return (
            f"peak {bound}{fmt_bytes(self.peak_bytes)}, retained {fmt_bytes(self.retained_bytes)} "
            f"({self.source}, {how})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "peak_bytes": int(self.peak_bytes),
            "retained_bytes": int(self.retained_bytes),
            "source": self.source,
            "exact": self.exact,
            "extra": dict(self.extra),
        }

    to_json = as_dict

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MemoryStats:
        return cls(
            int(d["peak_bytes"]),
            int(d["retained_bytes"]),
            str(d["source"]),
            bool(d["exact"]),
            dict(d.get("extra") or {}),
        )


# --------------------------------------------------------------------------- sources
#
# Each source is a small object: `begin()` reads the counters (and resets what can be reset),
# `end()` reads them again and returns the `MemoryStats` of what ran in between.


class _HostRss:
    """Linux: `clear_refs` = 5 resets `VmHWM`; peak = VmHWM after - VmRSS before."""

    name = MemorySource.HOST_RSS

    @staticmethod
    def available() -> bool:
        return os.access("/proc/self/clear_refs", os.W_OK) and os.path.exists("/proc/self/status")

    @staticmethod
    def _status() -> dict[str, int]:
        out = {}
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith((b"VmRSS:", b"VmHWM:")):
                    key, value = line.split(b":", 1)
                    out[key.decode()] = int(value.split()[0]) * 1024  # kB
        return out

    def begin(self) -> None:
        self._settle()
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        self._before = self._status()["VmRSS"]

    def _settle(self) -> None:
        """Wait until the RSS has not fallen for 3 ms (20 ms at most): XLA:CPU frees a
        call's buffers on its own threads after the result is ready, and a measured call
        that starts before the previous call's frees land reuses those pages unseen. With no
        wait, 26 of 40 readings of a 128 MiB temporary read 0-19 MiB on the CI VM; with
        2 ms, 40 of 40 read 127-128 MiB (docs/calibration-memory.md)."""
        rss, steady = self._status()["VmRSS"], 0
        for _ in range(20):
            time.sleep(0.001)
            now = self._status()["VmRSS"]
            steady = steady + 1 if now >= rss else 0
            if steady == 3:
                return
            rss = now

    def end(self) -> MemoryStats:
        status = self._status()
        return MemoryStats(
            max(0, status["VmHWM"] - self._before),
            status["VmRSS"] - self._before,
            self.name,
            False,
            {"rss_before_bytes": self._before},
        )


class _SampledRss:
    """Elsewhere: the RSS sampled every millisecond by a thread (psutil)."""

    name = MemorySource.HOST_RSS

    @staticmethod
    def available() -> bool:
        try:
            import psutil  # noqa: F401
        except ImportError:
            return False
        return True

    def begin(self) -> None:
        import psutil

        proc = psutil.Process()
        self._before = self._peak = proc.memory_info().rss
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(0.001):
                self._peak = max(self._peak, proc.memory_info().rss)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        self._proc = proc

    def end(self) -> MemoryStats:
        self._stop.set()
        self._thread.join()
        after = self._proc.memory_info().rss
        peak = max(self._peak, after)
        return MemoryStats(
            peak - self._before,
            after - self._before,
            self.name,
            False,
            {"sampled": 1, "rss_before_bytes": self._before},
        )


class _TorchCuda:
    name = MemorySource.TORCH_CUDA

    def begin(self) -> None:
        import torch

        torch.cuda.synchronize()
        self._before = torch.cuda.memory_allocated()
        self._reserved = torch.cuda.memory_reserved()
        torch.cuda.reset_peak_memory_stats()

    def end(self) -> MemoryStats:
        import torch

        torch.cuda.synchronize()
        return MemoryStats(
            torch.cuda.max_memory_allocated() - self._before,
            torch.cuda.memory_allocated() - self._before,
            self.name,
            True,
            {
                "reserved_peak_bytes": torch.cuda.max_memory_reserved() - self._reserved,
                "allocated_before_bytes": self._before,
            },
        )


def _jax_device_stats() -> list[dict[str, int]] | None:
    """`memory_stats()` of the default backend's local devices, or None where it is None."""
    try:
        import jax
    except ImportError:
        return None
    stats = [d.memory_stats() for d in jax.local_devices()]
    if not stats or any(s is None or "peak_bytes_in_use" not in s for s in stats):
        return None
    return stats


#: Largest ballast `jax-device` may hold during a measured call, as a fraction of the
#: device's `bytes_limit`: a call within this much of running out of memory could be pushed
#: over by the ballast, so beyond it the reading is an upper bound instead.
JAX_BALLAST_FRACTION = 0.25


class _JaxDevice:
    """`memory_stats()`, made exact with a ballast.

    `peak_bytes_in_use` never resets; a call that stays below the mark an earlier call left
    would be invisible. So, before the call, a ballast of `mark - in_use` bytes is allocated
    on each device: in use is then the mark, and anything the call allocates raises it, so
    `mark after - in use before (ballast included)` is the call's peak, exactly. The ballast
    is freed after the call. Where it would exceed `JAX_BALLAST_FRACTION` of the device's
    limit (or cannot be allocated), the reading is the upper bound `mark - in use` instead,
    marked `peak_is_upper_bound`.
    """

    name = MemorySource.JAX_DEVICE

    @staticmethod
    def available() -> bool:
        return _jax_device_stats() is not None

    def begin(self) -> None:
        import jax
        import jax.numpy as jnp

        self._ballast = []
        devices = jax.local_devices()
        for d, st in zip(devices, _jax_device_stats() or []):
            need = st["peak_bytes_in_use"] - st["bytes_in_use"]
            limit = st.get("bytes_limit") or 0
            if need <= 0 or not limit or need > JAX_BALLAST_FRACTION * limit:
                continue
            try:
                self._ballast.append(jnp.zeros((need,), jnp.uint8, device=d).block_until_ready())
            except Exception:  # out of memory, or a backend without `device=`: a bound only
                continue
        self._before = _jax_device_stats() or []

    def end(self) -> MemoryStats:
        after = _jax_device_stats() or []
        ballast = sum(int(b.nbytes) for b in self._ballast)
        self._ballast = []  # freed
        peak = retained = 0
        upper = 0
        for b, a in zip(self._before, after):
            if a["peak_bytes_in_use"] > b["peak_bytes_in_use"] or (
                b["peak_bytes_in_use"] == b["bytes_in_use"]
            ):
                # In use was at the mark before the call (ballast), or the call set a new
                # mark: either way the mark after is the call's peak.
                peak += a["peak_bytes_in_use"] - b["bytes_in_use"]
            else:
                # The call stayed below a mark an earlier call left: only a bound is known.
                peak += b["peak_bytes_in_use"] - b["bytes_in_use"]
                upper = 1
            retained += a["bytes_in_use"] - b["bytes_in_use"]
        extra = {"devices": len(after), "ballast_bytes": ballast}
        if upper:
            extra["peak_is_upper_bound"] = 1
        return MemoryStats(peak, retained, self.name, not upper, extra)


def _runtime_source(instrument: str | None):
    """The runtime source for a call whose instrument is `instrument`, or None."""
    if instrument in ("torch-cuda", "cuda-events"):
        return _TorchCuda()
    if instrument == "jax" and _JaxDevice.available():
        return _JaxDevice()
    if _HostRss.available():
        return _HostRss()
    if _SampledRss.available():
        return _SampledRss()
    return None


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


# --------------------------------------------------------------------------- the gate's rule


def allowed_growth(stats: MemoryStats, fraction: float, baseline_bytes: int) -> int:
    """Bytes by which a reading may exceed `baseline_bytes` and still pass.

    Exact sources: `fraction` of the baseline (`--perf-fail-memory`, default 0: no growth).
    `host-rss`: at least its calibrated noise (`HOST_RSS_TOLERANCE` of the baseline plus
    `HOST_RSS_SLACK_BYTES`), so an A/A never fails.
    """
    allowed = fraction * max(baseline_bytes, 0)
    if not stats.exact:
        allowed = max(allowed, HOST_RSS_TOLERANCE * max(baseline_bytes, 0) + HOST_RSS_SLACK_BYTES)
    return int(allowed)


def check_growth(
    series: str,
    current: MemoryStats,
    baseline: MemoryStats,
    fraction: float,
) -> dict[str, Any]:
    """One memory verdict: `pass`, `regression` or `not judged`, with the numbers.

    Readings from different sources are not comparable (not judged), nor are upper bounds.
    """
    verdict: dict[str, Any] = {
        "series": series,
        "kind": "memory",
        "source": current.source,
        "baseline_source": baseline.source,
        "peak_bytes": current.peak_bytes,
        "baseline_peak_bytes": baseline.peak_bytes,
        "exact": current.exact and baseline.exact,
    }
    if current.source != baseline.source or current.upper_bound_only or baseline.upper_bound_only:
        why = (
            f"sources differ ({baseline.source} -> {current.source})"
            if current.source != baseline.source
            else "a jax-device peak below an earlier high-water mark is only an upper bound"
        )
        verdict.update(verdict="not judged", allowed_bytes=None, rule=why)
        return verdict
    worst = current if not current.exact else baseline
    allowed = allowed_growth(worst, fraction, baseline.peak_bytes)
    limit = baseline.peak_bytes + allowed
    grew = current.peak_bytes > limit
    how = (
        f"exact source: growth allowed {fraction * 100:g}%"
        if current.exact and baseline.exact
        else f"inexact source: calibrated tolerance {HOST_RSS_TOLERANCE * 100:g}% + "
        f"{fmt_bytes(HOST_RSS_SLACK_BYTES)}"
    )
    verdict.update(
        verdict="regression" if grew else "pass",
        allowed_bytes=allowed,
        rule=f"peak must be <= {limit} bytes ({how})",
    )
    return verdict


def memory_message(v: dict[str, Any]) -> str:
    """A memory verdict as a sentence: the series, both byte counts, the source."""
    return (
        f"memory {v['series']}: peak {v['peak_bytes']} bytes ({fmt_bytes(v['peak_bytes'])}) vs "
        f"baseline {v['baseline_peak_bytes']} bytes ({fmt_bytes(v['baseline_peak_bytes'])}), "
        f"source {v['source']}; {v['rule']}: {v['verdict']}"
    )
