"""`MemoryStats`, how much one call needs, and the rule a reading is judged by.

The rule (`check_growth`, used by `perf.compare`'s memory claims and by the stored-baseline
gate): an exact source may not grow beyond `--perf-fail-memory` (default 0); `host-rss`, the
one inexact source, has its calibrated noise as a tolerance (`HOST_RSS_TOLERANCE`,
`HOST_RSS_SLACK_BYTES`); readings of different sources, or upper bounds, are not judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._values import fmt_bytes


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
    """How much memory one call needs (its sources: `perfsuite._memory_sources`)."""

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
