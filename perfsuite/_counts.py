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

How the executables a JAX call runs are found: the jitted functions' C++ fast path runs a
cached executable without any Python, so for the device-work readings the fast-path caches
are cleared (`jax._src.pjit._cpp_pjit_cache_*`) and no fast path is set up until the reading
ends (`pjit._get_fastpath_data` returns None meanwhile): every jitted call then takes the
Python path, which hits JAX's own compile caches (nothing is traced or compiled; checked,
and a note says otherwise), and the executable it runs (`ExecuteReplicated`) is seen. `pmap` has its own C++ dispatch
and is not seen (its executions count 0). The readings that count Python calls are separate, with
the fast path as the user has it, so the host cost is counted as paid.

Known inaccuracies (counts are gated as counts, not as truths about the hardware):

- XLA's cost model counts a `while` loop's body once (`lax.scan`, `fori_loop`): a scan of
  100 steps reports the FLOPs of one. Under `remat`, the recomputation is counted as
  compiled (once). Custom calls (cuBLAS/cuDNN on GPU, Pallas/Triton kernels) report 0 FLOPs
  on some backends. `bytes_accessed` is the model's operand+output bytes per HLO op, not
  DRAM traffic (fusion and caches change the truth).
- `FlopCounterMode` counts only ops with a FLOP formula (matmuls, convolutions, attention);
  elementwise work counts 0. It counts what is dispatched, so a `torch.compile`d region is
  counted as the ops it traced.
- `hlo_instructions` counts an entry computation's instructions, parameters and tuples
  included; a fusion is one instruction (about one kernel on GPU), a `while` one instruction.
"""

from __future__ import annotations

import collections
import contextlib
import functools as ft
import gc
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._compile import compile_log
from ._errors import PerfFailure, PerfUsageError


#: Every counter: what it counts (its unit is a count of that).
COUNTERS: dict[str, str] = {
    "python_calls": "Python function calls on the host",
    "compilations": "JAX backend compilations",
    "traces": "JAX jaxpr traces",
    "torch_compiles": "graphs compiled by torch.compile",
    "xla_flops": "FLOPs by XLA's cost model",
    "xla_bytes_accessed": "bytes accessed by XLA's cost model",
    "xla_transcendentals": "transcendental ops by XLA's cost model",
    "matmul_flops": "FLOPs of the matrix products in the executed HLO (2 x out x contracted)",
    "hlo_instructions": "HLO instructions in the executed entry computations",
    "hlo_fusions": "fusions in the executed HLO modules",
    "xla_executions": "XLA executables run",
    "torch_flops": "FLOPs by torch's FlopCounterMode",
    "aten_ops": "aten ops dispatched",
    "cuda_kernels": "CUDA kernels launched (profiler)",
}
#: Functions listed in `top_python_calls` (most called first).
TOP = 12


# --------------------------------------------------------------------------- Counts


@dataclass(frozen=True)
class Counts(Mapping):
    """The counts of one call (mapping-like: `counts["python_calls"]`).

    `readings` are the two readings; a key whose readings differ is in `unstable` and is
    never gated. `info` holds facts that are not counts (the dtype of the matmuls, for the
    roofline); `top_python_calls` the most called functions of the first reading.
    """

    readings: tuple[dict[str, int], ...]
    info: dict[str, Any] = field(default_factory=dict)
    top_python_calls: tuple[tuple[str, int], ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def first(self) -> dict[str, int]:
        """The first reading (what `counts[key]` reads; `values()` is the Mapping's)."""
        return dict(self.readings[0]) if self.readings else {}

    @property
    def unstable(self) -> dict[str, list[int | None]]:
        """`{counter: [reading 1, reading 2]}` for every counter whose readings differ."""
        keys = dict.fromkeys(k for r in self.readings for k in r)
        return {
            k: [r.get(k) for r in self.readings]
            for k in keys
            if len({r.get(k) for r in self.readings}) > 1
        }

    def deterministic(self, key: str) -> bool:
        return key in self and key not in self.unstable

    def __getitem__(self, key: str) -> int:
        values = self.first
        if key not in values:
            raise KeyError(
                f"no counter {key!r} was measured; measured: {sorted(values)} (each counter "
                "needs its framework loaded: see perfsuite._counts.COUNTERS)."
            )
        return values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.first)

    def __len__(self) -> int:
        return len(self.first)

    def __str__(self) -> str:
        unstable = self.unstable
        parts = [
            f"{k} {v:,}" + (f" (non-deterministic: {unstable[k]})" if k in unstable else "")
            for k, v in self.first.items()
        ]
        return ", ".join(parts) or "no counters"

    def to_json(self) -> dict[str, Any]:
        return {
            "values": self.first,
            "unstable": self.unstable,
            "readings": [dict(r) for r in self.readings],
            "info": dict(self.info),
            "top_python_calls": [list(t) for t in self.top_python_calls],
            "notes": list(self.notes),
        }

    as_dict = to_json

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Counts:
        return cls(
            tuple(dict(r) for r in d.get("readings") or [d.get("values", {})]),
            dict(d.get("info", {})),
            tuple((str(n), int(c)) for n, c in d.get("top_python_calls", [])),
            tuple(d.get("notes", [])),
        )


# --------------------------------------------------------------------------- Python calls


def _code_name(code: Any) -> str:
    module = code.co_filename.rsplit("/", 1)[-1]
    return f"{module}:{code.co_firstlineno}:{getattr(code, 'co_qualname', code.co_name)}"


class _CallCounter:
    """Counts Python function starts in this thread, by code object.

    `start()` turns it on as its last act and `stop` is a builtin (a `functools.partial` of
    `sys.setprofile`), so that only the calls in between are counted, none of the counter's
    own: `lambda: f(x)` with `f` a jitted function reads 1 (the lambda; the fast path is C++).
    """

    def __init__(self) -> None:
        self.counter: collections.Counter = collections.Counter()
        counter = self.counter
        monitoring = getattr(sys, "monitoring", None)
        self._monitoring = monitoring
        if monitoring is not None:  # Python >= 3.12: cheaper, and no clash with a profiler
            tool = monitoring.PROFILER_ID
            if monitoring.get_tool(tool) is not None:
                raise PerfUsageError(
                    "`python_calls` cannot be counted while another profiler holds "
                    f"sys.monitoring's profiler slot ({monitoring.get_tool(tool)!r})."
                )

            def start(code: Any, offset: int) -> None:
                counter[code] += 1

            self._tool = tool
            self._callback = start
            self.stop = ft.partial(monitoring.set_events, tool, 0)
            return
        previous = sys.getprofile()
        if previous is not None:
            # A profiler (coverage, cProfile) is on: counting would replace it and its own
            # hooks would be counted. Refuse rather than report a wrong number.
            raise PerfUsageError(
                "`python_calls` cannot be counted while another profiler is active "
                f"(sys.getprofile() is {previous!r}): run the perf tests without it."
            )

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                counter[frame.f_code] += 1

        self._profile = profile
        self.stop = ft.partial(sys.setprofile, None)

    def start(self) -> None:
        monitoring = self._monitoring
        if monitoring is not None:
            monitoring.use_tool_id(self._tool, "perfsuite")
            monitoring.register_callback(self._tool, monitoring.events.PY_START, self._callback)
            monitoring.set_events(self._tool, monitoring.events.PY_START)
        else:
            sys.setprofile(self._profile)

    def close(self) -> None:
        """Undo `start` (after `stop`): frees the monitoring tool id."""
        self.stop()
        monitoring = self._monitoring
        if monitoring is not None and monitoring.get_tool(self._tool) == "perfsuite":
            monitoring.register_callback(self._tool, monitoring.events.PY_START, None)
            monitoring.free_tool_id(self._tool)


# --------------------------------------------------------------------------- JAX executables


@dataclass
class _XlaCost:
    flops: int
    bytes_accessed: int
    transcendentals: int
    instructions: int
    fusions: int
    dot_dtypes: collections.Counter
    matmul_flops: int = 0
    tf32_eligible: bool = False


# `%name = <shape> <opcode>(...)`; a shape may be a tuple with spaces, `(f32[2]{0}, s32[])`.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.+?)\s+([\w\-]+)\(")
_DOT = re.compile(r"=\s*(\w+)\[[^\]]*\](?:\{[^}]*\})?\s+(?:dot|convolution)\(")
# On GPU a matmul is often a library call: `custom-call(bf16[...] %a, ...),
# custom_call_target="__cublas$gemm"` (or cuBLASLt, cuDNN convolutions): its first operand's
# dtype is the matmul's.
_LIBRARY_MATMUL = re.compile(
    r"custom-call\((\w+)\[.*custom_call_target=\"[^\"]*(?:gemm|Gemm|matmul|conv)"
)
_SHAPE = re.compile(r"(\w+)\[([\d,]*)\]")
_DOT_CONTRACTING = re.compile(r"lhs_contracting_dims=\{([\d,]*)\}")
# A library gemm's dimension numbers are in its backend_config (JSON):
# `"lhs_contracting_dimensions":["1"]`.
_GEMM_CONTRACTING = re.compile(r'"lhs_contracting_dimensions":\[([^\]]*)\]')
_LIBRARY_GEMM = re.compile(r'custom_call_target="[^"]*(?:gemm|Gemm|matmul)[^"]*"')
# Operand precision of a dot (`operand_precision={highest,highest}`) or a library gemm
# (`"operand_precision":["HIGHEST","HIGHEST"]`): only DEFAULT/HIGH may run f32 on TF32.
# An explicit f32 algorithm (`"algorithm":"ALG_DOT_F32_F32_F32"`) is true f32 as well.
_HIGHEST = re.compile(r"operand_precision[^\w]*\W*highest|ALG_DOT_F32_F32_F32", re.IGNORECASE)


def _dims(text: str) -> list[int]:
    return [int(d) for d in re.findall(r"\d+", text)]


_NAME = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=")
_OPERAND = re.compile(r"\s*(?:(\w+\[[\d,]*\])\S*\s+)?%?([\w.\-]+)")


def _lhs_shape(line: str, opcode: str, shapes: Mapping[str, str]) -> re.Match | None:
    """The `dtype[dims]` of an instruction's first operand (printed inline, or looked up in
    `shapes` when XLA prints operands by name only, as XLA:GPU does: `custom-call(%a, %b)`)."""
    rhs = line.split("=", 1)[1] if "=" in line else line
    operands = rhs.partition(f"{opcode}(")[2]
    first = _OPERAND.match(operands)
    if first is None:
        return None
    return _SHAPE.search(first.group(1) or shapes.get(first.group(2), ""))


def _matmul_flops(line: str, opcode: str, shapes: Mapping[str, str]) -> int:
    """FLOPs of one matrix product in HLO text: 2 x output elements x contracted size.

    Read from the instruction itself, so it holds whatever XLA's cost model does with the
    op: XLA's GPU cost analysis counts a cuBLAS/cuBLASLt custom call as (nearly) 0 FLOPs
    (jax-ml/jax#22249), which made an 8192^3 bf16 matmul read 0 FLOPs on the H200.
    Convolutions and other library calls are not counted here (0). An operand printed
    without its shape (`dot(%p0, %p1)`) is looked up in `shapes` (instruction name -> shape).
    """
    rhs = line.split("=", 1)[1] if "=" in line else line
    out = _SHAPE.search(rhs.partition(f"{opcode}(")[0])
    lhs = _lhs_shape(line, opcode, shapes)
    if out is None or lhs is None:
        return 0
    if opcode == "dot":
        contracting = _DOT_CONTRACTING.search(line)
    elif _LIBRARY_GEMM.search(line):
        contracting = _GEMM_CONTRACTING.search(line)
    else:
        return 0
    if contracting is None:
        return 0
    lhs_dims = _dims(lhs.group(2))
    k = 1
    for d in _dims(contracting.group(1)):
        if d >= len(lhs_dims):
            return 0
        k *= lhs_dims[d]
    n = 1
    for d in _dims(out.group(2)):
        n *= d
    return 2 * n * k


def _hlo_stats(text: str) -> tuple[int, int, collections.Counter, int, bool]:
    """Instructions of the entry computation, fusions of the module, dtypes of its dots,
    the FLOPs of its matrix products, and whether an f32 one may run on TF32.

    A computation's dots are counted once each, as written (a `while` body once, as XLA's
    cost model does).
    """
    instructions = fusions = flops = 0
    tf32 = False
    dtypes: collections.Counter = collections.Counter()
    shapes: dict[str, str] = {}  # instruction names are unique in an HLO module
    in_entry = False
    for line in text.splitlines():
        if line.startswith("ENTRY "):
            in_entry = True
            continue
        if in_entry and line.startswith("}"):
            in_entry = False
        m = _INSTRUCTION.match(line)
        if m is None:
            continue
        opcode = m.group(2)
        name = _NAME.match(line)
        if name is not None:
            shapes[name.group(1)] = m.group(1)
        if in_entry:
            instructions += 1
        if opcode == "fusion":
            fusions += 1
        d = _DOT.search(line) or _LIBRARY_MATMUL.search(line)
        dtype = None
        if (
            opcode in ("dot", "convolution")
            or (opcode == "custom-call" and d is not None)
            or (opcode == "custom-call" and _LIBRARY_GEMM.search(line))
        ):
            # The inputs' dtype is the math's (a bf16 dot may write f32); the output's where
            # the operand cannot be found.
            lhs = _lhs_shape(line, opcode, shapes)
            dtype = lhs.group(1) if lhs is not None else d.group(1) if d is not None else None
        if dtype is not None:
            dtypes[dtype] += 1
        if opcode in ("dot", "custom-call"):
            f = _matmul_flops(line, opcode, shapes)
            flops += f
            if f and dtype == "f32" and not _HIGHEST.search(line):
                tf32 = True
    return instructions, fusions, dtypes, flops, tf32


def _xla_cost(executable: Any) -> _XlaCost:
    try:
        cost = executable.cost_analysis() or {}
    except Exception:  # not every backend implements it
        cost = {}
    if isinstance(cost, list):  # older jaxlib: one dict per module
        cost = {
            k: sum(float(c.get(k, 0)) for c in cost)
            for k in ("flops", "bytes accessed", "transcendentals")
        }
    instructions = fusions = matmul = 0
    tf32 = False
    dtypes: collections.Counter = collections.Counter()
    try:
        for module in executable.hlo_modules():
            i, f, d, mf, t = _hlo_stats(module.to_string())
            instructions, fusions, matmul = instructions + i, fusions + f, matmul + mf
            tf32 = tf32 or t
            dtypes.update(d)
    except Exception:
        pass
    return _XlaCost(
        int(max(0.0, float(cost.get("flops", 0.0)))),
        int(max(0.0, float(cost.get("bytes accessed", 0.0)))),
        int(max(0.0, float(cost.get("transcendentals", 0.0)))),
        instructions,
        fusions,
        dtypes,
        matmul,
        tf32,
    )


@contextlib.contextmanager
def _jax_executions() -> Iterator[list[Any] | None]:
    """The XLA executables run in the block (None where JAX is not loaded or has no hook)."""
    if "jax" not in sys.modules:
        yield None
        return
    try:
        from jax._src import pjit
        from jax._src.interpreters import pxla

        caches = [pjit._cpp_pjit_cache_fun_only, pjit._cpp_pjit_cache_explicit_attributes]
        execute = pxla.ExecuteReplicated
        original = execute.__call__
    except (ImportError, AttributeError):  # a JAX whose internals moved: no device counts
        yield None
        return
    seen: list[Any] = []

    def call(self, *args):
        seen.append(self.xla_executable)
        return original(self, *args)

    fastpath = pjit._get_fastpath_data
    for cache in caches:
        cache.clear()
    # No fast path may be set up during the reading (the second call of a function in the
    # block would run in C++, unseen); cleared again after, so that no entry keeps the
    # Python path once the reading is over.
    pjit._get_fastpath_data = lambda *args, **kwargs: None
    execute.__call__ = call
    try:
        yield seen
    finally:
        execute.__call__ = original
        pjit._get_fastpath_data = fastpath
        for cache in caches:
            cache.clear()


# --------------------------------------------------------------------------- PyTorch


@contextlib.contextmanager
def _torch_work() -> Iterator[dict[str, Any] | None]:
    """Torch FLOPs and aten ops of the block (and the matmuls' dtypes); None without torch."""
    if "torch" not in sys.modules:
        yield None
        return
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    out: dict[str, Any] = {"dtypes": collections.Counter()}
    matmuls = {
        "mm",
        "addmm",
        "bmm",
        "baddbmm",
        "matmul",
        "convolution",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
    }

    class AtenCounter(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops += 1
            name = func.overloadpacket.__name__
            if name in matmuls and args and isinstance(args[-1], torch.Tensor):
                out["dtypes"][str(args[-1].dtype).replace("torch.", "")] += 1
            return func(*args, **(kwargs or {}))

    flops = FlopCounterMode(display=False)
    aten = AtenCounter()
    with flops, aten:
        yield out
    out["torch_flops"] = int(flops.get_total_flops())
    out["aten_ops"] = aten.ops
    # f32 matmuls may run on TF32 tensor cores when the user allowed it (torch's default is
    # "highest": true f32).
    out["tf32"] = torch.get_float32_matmul_precision() != "highest" or bool(
        getattr(torch.backends.cuda.matmul, "allow_tf32", False)
    )


@contextlib.contextmanager
def _cuda_kernels() -> Iterator[dict[str, int] | None]:
    """CUDA kernels launched in the block (the profiler's kernel events); None without CUDA.

    A reading of its own, without the dispatch modes of `_torch_work`: with a
    `TorchDispatchMode` active, a `torch.compile`d function runs eagerly (its kernels read as
    eager's: 1119 for SPD resid_mlp3 compiled and eager alike on the H200).
    """
    torch = sys.modules.get("torch")
    if torch is None or not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        yield None
        return
    out: dict[str, int] = {}
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
    with profiler:
        yield out
        torch.cuda.synchronize()
    out["cuda_kernels"] = sum(
        1
        for e in profiler.events()
        if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA
    )


def _dynamo_graphs() -> int | None:
    dynamo_utils = sys.modules.get("torch._dynamo.utils")
    if dynamo_utils is None:
        return None
    return int(dynamo_utils.counters["stats"]["unique_graphs"])


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
        raise TypeError(f"`fn` must be a callable taking no arguments, got {fn!r}.")
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


# --------------------------------------------------------------------------- at_most


def check_at_most(counts: Counts, at_most: Mapping[str, int] | None, where: str) -> None:
    """Fail, with the numbers, when a counter exceeds its limit in `at_most`."""
    __tracebackhide__ = True
    if at_most is None:
        return
    if not isinstance(at_most, Mapping):
        raise PerfUsageError(
            f"`at_most` must be a mapping of counter to limit, e.g. "
            f"{{'python_calls': 300}}, got {at_most!r}."
        )
    problems = []
    for key, limit in at_most.items():
        if key not in COUNTERS:
            raise PerfUsageError(
                f"`at_most` names an unknown counter {key!r}; counters: {sorted(COUNTERS)}."
            )
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 0:
            raise PerfUsageError(f"`at_most[{key!r}]` must be a number >= 0, got {limit!r}.")
        if key not in counts:
            raise PerfUsageError(
                f"`at_most[{key!r}]`: {key} was not measured for {where} (measured: "
                f"{sorted(counts)}); its framework must be loaded by the call."
            )
        if key in counts.unstable:
            problems.append(
                f"{key} is non-deterministic (readings {counts.unstable[key]}), so it cannot be "
                f"held to at most {limit:,}"
            )
        elif counts[key] > limit:
            problems.append(f"{key} {counts[key]:,} > at most {limit:,} (+{counts[key] - limit:,})")
    if problems:
        top = ", ".join(f"{n} x{c}" for n, c in counts.top_python_calls[:5])
        raise PerfFailure(
            f"`counts` of {where}: "
            + "; ".join(problems)
            + f". All counts: {counts}."
            + (f" Most called: {top}." if top else "")
        )


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
        raise TypeError(f"`fn` must be a callable taking no arguments, got {fn!r}.")
    with lock():
        before()
        _wait(fn())
        return measure_counts(fn)


def compare_counts(
    ca: Counts, cb: Counts, *, a: str, b: str, keys: Any = None
) -> dict[str, tuple[int, int]]:
    """`assert_counts_no_more`: `{counter: (a's, b's)}` checked; fails with the numbers."""
    __tracebackhide__ = True
    if keys is not None:
        if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
            raise PerfUsageError(f"`keys` must be a list of counter names, got {keys!r}.")
        missing = [k for k in keys if k not in ca or k not in cb]
        if missing:
            raise PerfUsageError(
                f"`keys` {missing} were not measured for both {a!r} (measured: {sorted(ca)}) "
                f"and {b!r} (measured: {sorted(cb)})."
            )
        wanted = list(keys)
    else:
        wanted = [k for k in ca if k in cb]
    checked: dict[str, tuple[int, int]] = {}
    problems = []
    for k in wanted:
        if not (ca.deterministic(k) and cb.deterministic(k)):
            if keys is not None:
                problems.append(
                    f"{k} is non-deterministic ({a}: {ca.readings and [r.get(k) for r in ca.readings]}, "
                    f"{b}: {[r.get(k) for r in cb.readings]}) and cannot be compared"
                )
            continue
        checked[k] = (ca[k], cb[k])
        if ca[k] > cb[k]:
            problems.append(f"{k}: {a} {ca[k]:,} > {b} {cb[k]:,} (+{ca[k] - cb[k]:,})")
    if problems:
        raise PerfFailure(
            f"`assert_counts_no_more({a!r}, than={b!r})`: "
            + "; ".join(problems)
            + f". Rule: every counter of {a} <= {b}'s, exactly. {a}: {ca}. {b}: {cb}."
        )
    return checked
