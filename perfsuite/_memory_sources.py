"""The memory sources: the counters read around a measured call.

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

Each source is a small object: `begin()` reads the counters (and resets what can be reset),
`end()` reads them again and returns the `MemoryStats` of what ran in between.
`xla-memory-analysis` runs nothing and is not one of them (`perfsuite._memory.analyse_jitted`).
"""

from __future__ import annotations

import os
import threading
import time

from ._memory_stats import MemoryStats
from ._values import MemorySource


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
