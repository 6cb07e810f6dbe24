"""Memory in the gates: `--perf-compare` (stored baselines) and `perfsuite ab`.

Memory needs no statistics across sessions the way time does: an exact source
(`torch-cuda`, `xla-memory-analysis`, a `jax-device` reading that set a new high-water mark)
reads the same bytes in every process for the same code, so any growth beyond
`--perf-fail-memory=PCT` (default 0: none) is a regression. `host-rss` is not exact; it is
allowed its calibrated tolerance (`perfsuite._memory.allowed_growth`). Each side is reduced to
the median peak of its sessions (or runs), so one unusual inexact reading does not decide.
Readings of different sources, and `jax-device` upper bounds, are "not judged" (listed with
their numbers, never failing). Verdicts go to the measurement's `memory_baselines` (kept
apart from the timed `baselines`, whose readers expect ratios and bands).
"""

from __future__ import annotations

from typing import Any

from ._memory import MemoryStats, check_growth, memory_message
from ._results import iter_series, measurement_series


def memory_readings(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`{memory series id: MemoryStats dict}` of a results document."""
    return {s.id: dict(s.entry) for s in iter_series(doc) if s.kind == "memory"}


def _median_reading(readings: list[dict[str, Any]]) -> MemoryStats:
    """The reading of median peak (lower median: an actual reading, with its source)."""
    ordered = sorted(readings, key=lambda r: r["peak_bytes"])
    return MemoryStats.from_dict(ordered[(len(ordered) - 1) // 2])


def judge_memory(
    sid: str, current: list[dict[str, Any]], baseline: list[dict[str, Any]], fraction: float
) -> dict[str, Any]:
    """One series' memory verdict: the median reading of each side, `check_growth`."""
    v = check_growth(sid, _median_reading(current), _median_reading(baseline), fraction)
    v["current_readings"] = len(current)
    v["baseline_readings"] = len(baseline)
    return v


def apply_memory(
    document: dict[str, Any],
    sessions: list[dict[str, dict[str, Any]]],
    fraction: float | None,
    name: str | None,
) -> list[dict[str, Any]]:
    """Attach a memory verdict to every memory series the baseline's sessions measured too
    (`sessions`: `memory_readings` of each). Returns the verdicts."""
    fraction = 0.0 if fraction is None else fraction
    found = []
    for m in document["measurements"]:
        for s in measurement_series(m):
            if s.kind != "memory":
                continue
            base = [sess[s.id] for sess in sessions if s.id in sess]
            if not base:
                continue
            v = {"name": name, **judge_memory(s.id, [dict(s.entry)], base, fraction)}
            m.setdefault("memory_baselines", []).append(v)
            found.append(v)
    return found


def gate_errors(
    verdicts: list[dict[str, Any]], armed: bool, armed_inexact: bool | None = None
) -> tuple[list[str], list[str]]:
    """(errors that fail the session, notes for the summary).

    A regression of an exact source fails the session when the gate is armed (`--perf-fail`
    or `--perf-fail-memory`); one of an inexact source (host RSS) only with an explicit
    `--perf-fail-memory` (`armed_inexact`): its tolerance is calibrated on the workloads of
    docs/calibration-memory.md, not on every workload a suite runs on the CPU, so `--perf-fail`
    alone (a time gate) reports it instead of failing on it.
    """
    armed_inexact = armed if armed_inexact is None else armed_inexact
    errors, notes = [], []
    for v in verdicts:
        if v["verdict"] == "regression":
            text = "REGRESSION " + memory_message(v)
            fails = armed if v["exact"] else armed_inexact
            (errors if fails else notes).append(
                text
                if fails
                else text
                + " (not failing: no --perf-fail-memory"
                + ("" if not v["exact"] else " or --perf-fail")
                + ")"
            )
        elif v["verdict"] == "not judged":
            notes.append(memory_message(v))
    return errors, notes


def ab_memory(
    base: dict[str, list[dict[str, Any]]],
    head: dict[str, list[dict[str, Any]]],
    fraction: float,
) -> list[dict[str, Any]]:
    """`perfsuite ab`'s memory verdicts: HEAD's median reading against BASE's, per series
    measured on both sides (`{sid: [reading per run]}`)."""
    return [judge_memory(sid, head[sid], base[sid], fraction) for sid in base if head.get(sid)]
