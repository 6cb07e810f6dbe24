"""Exact counts of the work one call does: `perf.counts`, and every candidate's counts.

Wall time on a shared runner is noisy; *how much work* a call does is not. A call of the
candidate is run, untimed, with counters on, **twice**; a counter whose two readings agree is
*deterministic* and may be gated exactly (any increase is a regression), one whose readings
differ is reported with both and never gated.

The counters (each only where its framework is loaded; `COUNTERS` says what each one is):

- `python_calls`: Python function calls made on the host by one call (`sys.monitoring`
  PY_START events where available, Python >= 3.12; `sys.setprofile` "call" events on 3.11).
  Generator and coroutine resumptions count as calls. The garbage collector is off during a
  reading: a collection runs `__del__`s and weakref callbacks wherever it happens to fall,
  which is the machine's timing, not the call's work. Only the calling thread is counted.
- `compilations`, `traces`: JAX backend compilations and jaxpr traces (`jax.monitoring`,
  `perfsuite._compile`) during the call; `torch_compiles` the graphs `torch.compile` made.
- `xla_flops`, `xla_bytes_accessed`, `xla_transcendentals`: XLA's `cost_analysis()` of the
  executables the call ran, summed over executions; `hlo_instructions` (in the entry
  computations: about the kernels launched) and `hlo_fusions`. `matmul_flops`: the FLOPs of the
  matrix products in the executed HLO, read off each `dot` and each cuBLAS/cuBLASLt gemm call
  (2 x output elements x contracted size), because XLA's GPU cost model counts a library gemm
  as about 0 FLOPs (jax-ml/jax#22249); the roofline takes the larger of the two.
- `torch_flops` (`torch.utils.flop_counter.FlopCounterMode`), `aten_ops` (aten overloads
  dispatched, a `TorchDispatchMode`), `cuda_kernels` (kernels the profiler saw launched, only
  with CUDA).

How the executables a JAX call runs are found (the C++ fast path off during the device-work
readings) is told in `_counts_jax`. The readings that count Python calls are separate, with
the fast path as the user has it, so the host cost is counted as paid.

Known inaccuracies (counts are gated as counts, not as truths about the hardware):

- XLA's cost model counts a `while` loop's body once (`lax.scan`, `fori_loop`): a scan of
  100 steps reports the FLOPs of one. Under `remat`, the recomputation is counted as
  compiled (once). Custom calls (cuBLAS/cuDNN on GPU, Pallas/Triton kernels) report 0 FLOPs
  on some backends. `bytes_accessed` is the model's operand+output bytes per HLO op, not
  DRAM traffic (fusion and caches change the truth).
- `FlopCounterMode` counts only ops with a FLOP formula (matmuls, convolutions, attention);
  elementwise work counts 0. A `torch.compile`d region is counted as the eager program it
  compiles (its aten ops and FLOPs, run once under the `force_eager` stance so the compiled
  code stays in use afterwards); `cuda_kernels` is read in a separate call, compiled, so it
  sees inductor's fused kernels.
- `hlo_instructions` counts an entry computation's instructions, parameters and tuples
  included; a fusion is one instruction (about one kernel on GPU), a `while` one instruction.

The code is one module per concept: the `Counts` model and its checks (`_counts_model`),
the Python-call counter (`_counts_python`), JAX's executed HLO (`_counts_jax`) and torch's
counters (`_counts_torch`); this module takes the readings from them (`measure_counts`).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import sys
from collections.abc import Callable, Iterator
from typing import Any

from ._compile import compile_log
from ._counts_jax import _jax_executions, _xla_cost, _XlaCost
from ._counts_model import COUNTERS as COUNTERS
from ._counts_model import Counts as Counts
from ._counts_model import check_at_most as check_at_most
from ._counts_model import compare_counts as compare_counts
from ._counts_python import _CallCounter, _code_name
from ._counts_torch import _cuda_kernels, _dynamo_graphs, _torch_work
from ._errors import PerfUsageError


#: Functions listed in `top_python_calls` (most called first).
TOP = 12


# --------------------------------------------------------------------------- readings


def _wait(out: Any) -> None:
    """Wait for the call's work as timing does (device counters need it done): the
    instrument its output selects (`perfsuite.instruments`), nothing for host values."""
    from .instruments import select_instrument

    select_instrument(out).wait(out)


@contextlib.contextmanager
def _gc_off() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _host_reading(
    fn: Callable[[], Any], wait: Callable[[Any], None]
) -> tuple[dict[str, int], collections.Counter]:
    graphs = _dynamo_graphs()
    with _gc_off(), compile_log() as log:
        calls = _CallCounter()
        try:
            calls.start()
            out = fn()
            calls.stop()
        finally:
            calls.close()
        wait(out)
    reading = {"python_calls": sum(calls.counter.values())}
    if "jax" in sys.modules:
        reading["compilations"] = log.compilations
        reading["traces"] = log.traces
    after = _dynamo_graphs()
    if after is not None:
        reading["torch_compiles"] = after - (graphs or 0)
    return reading, calls.counter


def _work_reading(
    fn: Callable[[], Any], wait: Callable[[Any], None], info: dict[str, Any], notes: list[str]
) -> dict[str, int]:
    reading: dict[str, int] = {}
    with _gc_off(), compile_log() as log:
        with _jax_executions() as executed, _torch_work() as torch_out:
            out = fn()
            wait(out)
    if executed is not None and executed:
        costs: dict[int, _XlaCost] = {}
        total = collections.Counter()
        dtypes: collections.Counter = collections.Counter()
        for ex in executed:
            c = costs.get(id(ex)) or costs.setdefault(id(ex), _xla_cost(ex))
            total["xla_flops"] += c.flops
            total["xla_bytes_accessed"] += c.bytes_accessed
            total["xla_transcendentals"] += c.transcendentals
            total["hlo_instructions"] += c.instructions
            total["hlo_fusions"] += c.fusions
            total["matmul_flops"] += c.matmul_flops
            dtypes.update(c.dot_dtypes)
            if c.tf32_eligible:
                info["f32_matmul_precision"] = "default"
        reading.update(total)
        reading["xla_executions"] = len(executed)
        if dtypes:
            info["matmul_dtype"] = dtypes.most_common(1)[0][0]
        if log.compilations or log.traces:
            # The Python path found no cached executable: what ran was compiled anew, so
            # this reading saw the cold call; said so, the numbers are still its work.
            notes.append(
                f"the device-work reading traced {log.traces} and compiled {log.compilations} "
                "times (the Python dispatch path missed JAX's caches)"
            )
    if torch_out is not None:
        if torch_out.get("aten_ops"):
            reading["torch_flops"] = torch_out["torch_flops"]
            reading["aten_ops"] = torch_out["aten_ops"]
            if torch_out["dtypes"]:
                info.setdefault("matmul_dtype", torch_out["dtypes"].most_common(1)[0][0])
            if torch_out.get("tf32"):
                info.setdefault("f32_matmul_precision", "default")
    with _gc_off(), _cuda_kernels() as kernels:
        if kernels is not None:
            wait(fn())
    if kernels:
        reading["cuda_kernels"] = kernels["cuda_kernels"]
    return reading


def measure_counts(
    fn: Callable[[], Any], *, work: bool = True, wait: Callable[[Any], None] | None = None
) -> Counts:
    """Count one call of `fn` twice (untimed): host readings, then device-work readings.

    Four calls in all when a framework is loaded (two with the Python-call counter, two with
    the device-work counters, which slow the host path and so cannot share a call with it);
    two otherwise. `work=False` skips the device-work readings. `wait(out)` waits for a
    call's work (default: the instrument its output selects).
    """
    if not callable(fn):
        raise PerfUsageError(f"`fn` must be a callable taking no arguments, got {fn!r}.")
    info: dict[str, Any] = {}
    notes: list[str] = []
    wait = wait or _wait
    host = [_host_reading(fn, wait) for _ in range(2)]
    readings = [dict(r) for r, _ in host]
    frameworks = "jax" in sys.modules or "torch" in sys.modules
    if work and frameworks:
        for reading in readings:
            reading.update(_work_reading(fn, wait, info, notes))
    top = tuple((_code_name(code), n) for code, n in host[0][1].most_common(TOP))
    return Counts(tuple(readings), info, top, tuple(dict.fromkeys(notes)))


def candidate_counts(fn: Callable[[], Any], wait: Callable[[Any], None]) -> Counts | None:
    """A candidate's counts, taken by the engine after warm-up.

    The device-work readings leave JAX's fast-path caches cleared: the engine calls every
    counted candidate once more before its first round (`restore_fast_paths`), so the first
    timed call is not the one that refills them.
    """
    try:
        return measure_counts(fn, wait=wait)
    except PerfUsageError as exc:  # e.g. another profiler is active: time it uncounted
        return Counts((), notes=(f"not counted: {exc}",))


def restore_fast_paths(calls: list[tuple[Callable[[], Any], Callable[[Any], None]]]) -> None:
    """One untimed call of each `(fn, wait)`, after all were counted (JAX only)."""
    if "jax" not in sys.modules:
        return
    for fn, wait in calls:
        wait(fn())


def count_call(
    fn: Callable[[], Any], *, lock: Callable[[], Any], before: Callable[[], None]
) -> Counts:
    """`perf.counts`: one first call (compiles, left out), then the counted calls."""
    if not callable(fn):
        raise PerfUsageError(f"`fn` must be a callable taking no arguments, got {fn!r}.")
    with lock():
        before()
        _wait(fn())
        return measure_counts(fn)
