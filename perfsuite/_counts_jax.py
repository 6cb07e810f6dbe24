"""JAX's counters: the XLA executables a call runs, their cost analysis and their HLO.

How the executables a JAX call runs are found: the jitted functions' C++ fast path runs a
cached executable without any Python, so for the device-work readings the fast-path caches
are cleared (`jax._src.pjit._cpp_pjit_cache_*`) and no fast path is set up until the reading
ends (`pjit._get_fastpath_data` returns None meanwhile): every jitted call then takes the
Python path, which hits JAX's own compile caches (nothing is traced or compiled; checked,
and a note says otherwise), and the executable it runs (`ExecuteReplicated`) is seen. `pmap` has its own C++ dispatch
and is not seen (its executions count 0).

Of each executable seen, XLA's `cost_analysis()` gives FLOPs, bytes accessed and
transcendentals; its HLO text gives the instructions and fusions of the entry computations
and the FLOPs of its matrix products (`_hlo_stats`: each `dot` and each cuBLAS/cuBLASLt gemm
call, 2 x output elements x contracted size, since XLA's GPU cost model counts a library
gemm as about 0 FLOPs), and whether an f32 matmul may run on TF32.
"""

from __future__ import annotations

import collections
import contextlib
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


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
