"""The profilers that run a candidate's calls: `cProfile` (host), `torch.profiler`, `jax.profiler`.

Each runs `fn` `n` times (its work waited for, as timing does) and returns a per-call
table for `_profile_diff`; the torch and JAX ones also leave their trace files (Chrome trace
JSON; XProf `.xplane.pb` and a Perfetto trace) where asked, moved into place whole.
"""

from __future__ import annotations

import cProfile
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


# --------------------------------------------------------------------------- host: cProfile

#: Functions of the profiling loop itself (this module, the profiler's switch): not the
#: candidate's, so not in a diff.
_OWN = {"_run_calls", "disable", "enable"}


def _host_profile(fn: Callable[[], Any], wait: Callable[[Any], None], n: int) -> cProfile.Profile:
    prof = cProfile.Profile()
    prof.enable()
    try:
        _run_calls(fn, wait, n)
    finally:
        prof.disable()
    prof.create_stats()
    return prof


def _run_calls(fn: Callable[[], Any], wait: Callable[[Any], None], n: int) -> None:
    for _ in range(n):
        wait(fn())


def _func_name(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~" and line == 0:
        return name  # a built-in: "<built-in method time.sleep>"
    return f"{name} ({Path(filename).name}:{line})"


def host_table(stats: dict, n: int) -> dict[str, tuple[float, float]]:
    """`{function: (self seconds per call, calls per call)}` of a `cProfile` stats dict."""
    out: dict[str, tuple[float, float]] = {}
    for key, (_cc, nc, tt, _ct, _callers) in stats.items():
        filename, _line, name = key
        if (filename == __file__ and name in _OWN) or "_lsprof.Profiler" in name:
            continue
        label = _func_name(key)
        old = out.get(label, (0.0, 0.0))
        out[label] = (old[0] + tt / n, old[1] + nc / n)
    return out


# --------------------------------------------------------------------------- torch


def _holds(output: Any, module: str) -> bool:
    from .instruments._base import iter_leaves

    return any(type(x).__module__.split(".")[0] == module for x in iter_leaves(output))


def _torch_profile(fn: Callable[[], Any], wait: Callable[[Any], None], n: int, trace: Path):
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        _run_calls(fn, wait, n)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    tmp = trace.with_name(f".{trace.name}.tmp")
    prof.export_chrome_trace(str(tmp))
    os.replace(tmp, trace)
    table: dict[str, tuple[float, float, float]] = {}
    for e in prof.key_averages():
        device_us = getattr(e, "self_device_time_total", None)
        if device_us is None:
            device_us = getattr(e, "self_cuda_time_total", 0.0)
        table[e.key] = (e.self_cpu_time_total * 1e-6 / n, e.count / n, device_us * 1e-6 / n)
    return table


# --------------------------------------------------------------------------- JAX


def _jax_profile(
    fn: Callable[[], Any], wait: Callable[[Any], None], n: int, folder: Path
) -> dict[str, tuple[float, float, float]] | None:
    import jax

    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with jax.profiler.trace(str(tmp), create_perfetto_trace=True):
            _run_calls(fn, wait, n)
        # Keep the trace files flat in one folder (jax nests them under a timestamp).
        keep = Path(tempfile.mkdtemp(prefix=f".{folder.name}.keep.", dir=folder.parent))
        for f in tmp.rglob("*"):
            if f.is_file():
                os.replace(f, keep / f.name)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(keep, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pbs = sorted(folder.glob("*.xplane.pb"))
    if not pbs:
        return None
    try:
        return jax_op_table(pbs[0], n)
    except Exception:  # an XProf format this jax cannot read back: the trace stays
        return None


def jax_op_table(path: Path, n: int) -> dict[str, tuple[float, float, float]]:
    """`{op: (0, count per call, device seconds per call)}` from an `.xplane.pb` file.

    Device planes (`/device:GPU:0`, TPU) give their `XLA Ops` line (or every line when there
    is none); on CPU, where XLA runs on the host, the XLA client's threads (`tf_XLA...`)
    give the ops, without the thread pool's own markers.
    """
    import jax

    data = jax.profiler.ProfileData.from_file(str(path))
    table: dict[str, list[float]] = {}

    def add(events: Iterable[Any]) -> None:
        for e in events:
            name = e.name
            # The CPU runtime's own markers (its thread pool waiting, the executor's wait
            # for completion) overlap the ops they wait for: not ops.
            if name.startswith(("end: ", "ThreadpoolListener", "ThunkExecutor")) or (
                "ThreadPool" in name
            ):
                continue
            row = table.setdefault(name, [0.0, 0.0])
            row[0] += 1
            row[1] += e.duration_ns * 1e-9

    device = [p for p in data.planes if p.name.startswith("/device:")]
    for plane in device:
        lines = list(plane.lines)
        ops = [ln for ln in lines if ln.name == "XLA Ops"] or lines
        for ln in ops:
            add(ln.events)
    if not device:
        for plane in data.planes:
            if plane.name.startswith("/host:CPU"):
                for ln in plane.lines:
                    if "XLA" in ln.name:
                        add(ln.events)
    return {k: (0.0, v[0] / n, v[1] / n) for k, v in table.items()}
