"""Counts and rooflines as words, for the terminal table and `perfsuite report`."""

from __future__ import annotations

from typing import Any

from ._roofline import words as roofline_words


#: Counters shown in a table cell, in this order (the rest are in the JSON).
SHOWN = (
    ("python_calls", "py calls"),
    ("compilations", "compiles"),
    ("traces", "traces"),
    ("torch_compiles", "torch compiles"),
    ("xla_flops", "FLOPs"),
    ("xla_bytes_accessed", "bytes"),
    ("hlo_fusions", "fusions"),
    ("torch_flops", "FLOPs"),
    ("aten_ops", "aten ops"),
    ("cuda_kernels", "kernels"),
)


def _n(x: int) -> str:
    return f"{x:,}" if abs(x) < 1e7 else f"{x:.3g}"


def counts_words(entry: dict[str, Any]) -> str:
    """`py calls 1,234, compiles 0, FLOPs 1.2e+09; 12 TFLOP/s (41% MFU bf16)`.

    `entry` holds `counts` (`Counts.to_json`) and, for a timed candidate, `roofline`.
    A non-deterministic counter is marked `~` (its two readings differ: never gated).
    """
    counts = entry.get("counts") or {}
    values = counts.get("values", {})
    unstable = counts.get("unstable", {})
    parts = [
        f"{label} {_n(values[key])}{'~' if key in unstable else ''}"
        for key, label in SHOWN
        if key in values
    ]
    text = ", ".join(parts) or "; ".join(counts.get("notes", [])) or "no counters"
    roof = roofline_words(entry.get("roofline"))
    return f"{text}; {roof}" if roof else text


#: Roofline numbers exported as tracks: key -> unit.
ROOFLINE_TRACKS = {
    "flops_per_s": "FLOP/s",
    "bytes_per_s": "bytes/s",
    "mfu": "fraction of peak",
    "bandwidth_utilisation": "fraction of peak",
}


def tracks(entry: dict[str, Any]) -> list[tuple[str, float, str]]:
    """`(name, value, unit)` of every deterministic counter and roofline number of a
    counts series entry (what asv gets as `track_` benchmarks)."""
    counts = entry.get("counts") or {}
    unstable = counts.get("unstable", {})
    out = [
        (key, float(value), "count")
        for key, value in counts.get("values", {}).items()
        if key not in unstable
    ]
    roof = entry.get("roofline") or {}
    out += [
        (key, float(roof[key]), unit)
        for key, unit in ROOFLINE_TRACKS.items()
        if roof.get(key) is not None
    ]
    return out
