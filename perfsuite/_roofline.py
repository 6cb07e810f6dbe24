"""The roofline beside every time: achieved FLOP/s and bytes/s, and their fraction of peak.

For a candidate whose counts have FLOPs (`xla_flops`, `torch_flops`) or bytes
(`xla_bytes_accessed`), the achieved rates are those counts over its time per call; on a
device in `PEAKS` they are also given as a fraction of the device's dense peak for the
matmuls' dtype (MFU) and of its memory bandwidth. A device not in the table gets the rates
and a note, never a made-up fraction.

The peaks are the vendors' datasheet numbers for *dense* math (NVIDIA quotes tensor-core
numbers "with sparsity", twice the dense ones: the table halves those), as read on
2026-12-02:

- H100 SXM5 / H200 SXM: NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100,
  2023) and NVIDIA H200 datasheet (nvidia.com/en-us/data-center/h200, 2024): BF16/FP16 989.4
  TFLOP/s, TF32 494.7, FP32 66.9 (no tensor cores), FP8 1978.9; HBM3 3.35 TB/s (H100 SXM),
  HBM3e 4.8 TB/s (H200). H100 PCIe: BF16 756, FP32 51.2, 2.0 TB/s.
- A100: NVIDIA A100 datasheet (nvidia.com/en-us/data-center/a100, 2021): BF16/FP16 312, TF32
  156, FP32 19.5; 2.039 TB/s (SXM4 80GB), 1.935 TB/s (PCIe 80GB), 1.555 TB/s (40GB).
- L4: NVIDIA L4 datasheet (2023): BF16/FP16 121 (242 with sparsity), FP8 242.5, FP32 30.3;
  GDDR6 300 GB/s.
- TPU v4: cloud.google.com/tpu/docs/v4 (2023): BF16 275 TFLOP/s, HBM2 1,228 GB/s.
- TPU v5e: cloud.google.com/tpu/docs/v5e (2024): BF16 197 TFLOP/s, INT8 394, HBM2 819 GB/s.
- TPU v5p: cloud.google.com/tpu/docs/v5p (2024): BF16 459 TFLOP/s, INT8 918, HBM2e 2,765 GB/s.

What the fractions mean: FLOPs and bytes are the counters' (XLA's cost model, torch's
FLOP formulas; see `perfsuite._counts` for their known inaccuracies), so MFU is "model
FLOPs" over time. FP32 matmuls are judged against the FP32 (CUDA-core) peak: where TF32 is
on (JAX's default precision on Ampere and later, `torch.set_float32_matmul_precision("high")`)
an f32 matmul at default precision is judged against the TF32 peak instead (the counts'
`info.f32_matmul_precision`): against FP32 it read 154% on the H200. TPUs publish no FP32
peak: FP32 there gets rates only. The FLOPs are the larger of the framework's count and
`matmul_flops` (perfsuite's own count of the executed matrix products), because XLA's GPU
cost model counts cuBLAS gemm calls as about 0 FLOPs (`flops_source` says which).
"""

from __future__ import annotations

import sys
from typing import Any


TFLOPS = 1e12
TBPS = 1e12

#: Device -> (dense peak FLOP/s per dtype, memory bandwidth in bytes/s). Sources above.
PEAKS: dict[str, tuple[dict[str, float], float]] = {
    "H200": ({"bf16": 989.4 * TFLOPS, "f16": 989.4 * TFLOPS, "tf32": 494.7 * TFLOPS,
              "f32": 66.9 * TFLOPS, "f8": 1978.9 * TFLOPS}, 4.8 * TBPS),
    "H100 SXM": ({"bf16": 989.4 * TFLOPS, "f16": 989.4 * TFLOPS, "tf32": 494.7 * TFLOPS,
                  "f32": 66.9 * TFLOPS, "f8": 1978.9 * TFLOPS}, 3.35 * TBPS),
    "H100 PCIe": ({"bf16": 756.0 * TFLOPS, "f16": 756.0 * TFLOPS, "tf32": 378.0 * TFLOPS,
                   "f32": 51.2 * TFLOPS, "f8": 1513.0 * TFLOPS}, 2.0 * TBPS),
    "A100 80GB SXM": ({"bf16": 312.0 * TFLOPS, "f16": 312.0 * TFLOPS, "tf32": 156.0 * TFLOPS,
                       "f32": 19.5 * TFLOPS}, 2.039 * TBPS),
    "A100 80GB PCIe": ({"bf16": 312.0 * TFLOPS, "f16": 312.0 * TFLOPS, "tf32": 156.0 * TFLOPS,
                        "f32": 19.5 * TFLOPS}, 1.935 * TBPS),
    "A100 40GB": ({"bf16": 312.0 * TFLOPS, "f16": 312.0 * TFLOPS, "tf32": 156.0 * TFLOPS,
                   "f32": 19.5 * TFLOPS}, 1.555 * TBPS),
    "L4": ({"bf16": 121.0 * TFLOPS, "f16": 121.0 * TFLOPS, "tf32": 60.0 * TFLOPS,
            "f32": 30.3 * TFLOPS, "f8": 242.5 * TFLOPS}, 0.3 * TBPS),
    "TPU v4": ({"bf16": 275.0 * TFLOPS}, 1.228 * TBPS),
    "TPU v5e": ({"bf16": 197.0 * TFLOPS}, 0.819 * TBPS),
    "TPU v5p": ({"bf16": 459.0 * TFLOPS}, 2.765 * TBPS),
}  # fmt: skip

#: Lower-cased substrings of a device name (JAX `device_kind`, `torch.cuda.get_device_name`)
#: -> `PEAKS` key, first match wins (more specific names first).
_NAMES = (
    ("h200", "H200"),
    ("h100 pcie", "H100 PCIe"),
    ("h100", "H100 SXM"),
    ("a100 80gb pcie", "A100 80GB PCIe"),
    ("a100-pcie-80gb", "A100 80GB PCIe"),
    ("a100-sxm4-80gb", "A100 80GB SXM"),
    ("a100-sxm-80gb", "A100 80GB SXM"),
    ("a100", "A100 40GB"),
    ("l4", "L4"),
    ("tpu v4", "TPU v4"),
    ("tpu v5 lite", "TPU v5e"),
    ("tpu v5e", "TPU v5e"),
    ("tpu v5p", "TPU v5p"),
    ("tpu v5", "TPU v5p"),  # JAX calls v5p "TPU v5"
)

#: dtype spellings (XLA's and torch's) -> the table's.
_DTYPES = {
    "bf16": "bf16", "bfloat16": "bf16", "f16": "f16", "float16": "f16", "half": "f16",
    "f32": "f32", "float32": "f32", "float": "f32", "tf32": "tf32",
    "f8e4m3fn": "f8", "f8e5m2": "f8", "float8_e4m3fn": "f8", "float8_e5m2": "f8",
}  # fmt: skip


def peak_key(device: str | None) -> str | None:
    """The `PEAKS` entry of a device name, or None."""
    if not device:
        return None
    name = device.lower()
    for pattern, key in _NAMES:
        if pattern in name:
            return key
    return None


def current_device(framework: str) -> str | None:
    """The device the framework's default computations run on (None for a CPU)."""
    if framework == "jax" and "jax" in sys.modules:
        import jax

        try:
            dev = jax.devices()[0]
        except Exception:
            return None
        return None if dev.platform == "cpu" else str(dev.device_kind)
    torch = sys.modules.get("torch")
    if framework == "torch" and torch is not None and torch.cuda.is_available():
        if torch.cuda.is_initialized():
            return str(torch.cuda.get_device_name())
    return None


def roofline(counts: dict[str, Any], per_call_s: float | None) -> dict[str, Any] | None:
    """Achieved rates of one candidate (and fractions of peak on a known device).

    `counts` is a `Counts.to_json()`. None when there are no FLOPs or bytes to put over time.
    """
    values = counts.get("values", {})
    unstable = counts.get("unstable", {})
    framework = "jax" if "xla_flops" in values else "torch" if "torch_flops" in values else None
    if framework is None or not per_call_s or per_call_s <= 0:
        return None
    flops = values.get("xla_flops", values.get("torch_flops"))
    flops_source = "xla_flops" if "xla_flops" in values else "torch_flops"
    # XLA's GPU cost model counts a cuBLAS gemm as ~0 FLOPs; perfsuite's own count of the
    # matrix products in the executed HLO is then the larger, truer number.
    if values.get("matmul_flops", 0) > (flops or 0):
        flops, flops_source = values["matmul_flops"], "matmul_flops"
    nbytes = values.get("xla_bytes_accessed")
    out: dict[str, Any] = {
        "flops_per_call": flops,
        "flops_source": flops_source,
        "bytes_per_call": nbytes,
        "per_call_s": per_call_s,
        "flops_per_s": None if flops is None else flops / per_call_s,
        "bytes_per_s": None if nbytes is None else nbytes / per_call_s,
        "arithmetic_intensity": flops / nbytes if flops is not None and nbytes else None,
    }
    if any(
        k in unstable for k in ("xla_flops", "torch_flops", "matmul_flops", "xla_bytes_accessed")
    ):
        out["note"] = "FLOPs or bytes differed between readings: rates from the first reading"
    device = current_device(framework)
    key = peak_key(device)
    info = counts.get("info", {})
    dtype = _DTYPES.get(str(info.get("matmul_dtype", "f32")).lower(), "f32")
    # f32 matmuls at default precision run on TF32 tensor cores where the device has them
    # (JAX's default on Ampere and later; torch when `set_float32_matmul_precision` allows):
    # judged against the TF32 peak, else MFU reads above 100%.
    if dtype == "f32" and info.get("f32_matmul_precision") == "default":
        if key is not None and "tf32" in PEAKS[key][0]:
            dtype = "tf32"
    out.update(device=device, dtype=dtype)
    if key is None:
        where = device or "the CPU"
        out["note"] = f"no peak known for {where}: achieved rates only (perfsuite._roofline.PEAKS)"
        return out
    peaks, bandwidth = PEAKS[key]
    peak = peaks.get(dtype)
    out.update(peak_device=key, peak_flops_per_s=peak, peak_bytes_per_s=bandwidth)
    out["mfu"] = None if peak is None or flops is None else out["flops_per_s"] / peak
    out["bandwidth_utilisation"] = None if nbytes is None else out["bytes_per_s"] / bandwidth
    if out["bandwidth_utilisation"] is not None and out["bandwidth_utilisation"] > 1:
        # XLA's `bytes_accessed` sums each HLO op's operands and outputs; inside a fusion or
        # from the cache many of those never reach DRAM (H200, BERT-base 1x8 step: 164%).
        # Above the device's bandwidth the count cannot be traffic: said so beside the number.
        out["bytes_note"] = (
            "XLA's bytes_accessed over time exceeds the device's bandwidth: the cost model's "
            "bytes bound the traffic from above (fused and cached operands), they are not "
            "DRAM bytes"
        )
    if peak is None:
        out["note"] = f"{key} publishes no {dtype} peak: no MFU"
    return out


def words(r: dict[str, Any] | None) -> str:
    """One short line for tables: `12.3 TFLOP/s (41% MFU), 1.2 TB/s (30% of bw)`."""
    if not r:
        return ""
    parts = []
    if r.get("flops_per_s") is not None:
        text = f"{_si(r['flops_per_s'])}FLOP/s"
        if r.get("mfu") is not None:
            text += f" ({r['mfu']:.0%} MFU {r['dtype']})"
        parts.append(text)
    if r.get("bytes_per_s") is not None:
        text = f"{_si(r['bytes_per_s'])}B/s"
        if r.get("bandwidth_utilisation") is not None:
            over = " model bytes, above peak" if r.get("bytes_note") else ""
            text += f" ({r['bandwidth_utilisation']:.0%} of bw{over})"
        parts.append(text)
    return ", ".join(parts)


def _si(x: float) -> str:
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}"
    return f"{x:.3g} "
