"""Per-call profile tables of two sides, their diff, and the text files they are written to.

A table is `{name: (self seconds per call, calls per call[, device seconds per call])}`; a
diff joins two tables into `Row`s ranked by the size of the change in time, then in calls,
and names the first side `a` (the candidate the claim is about): a change is `a - b`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ._results import write_atomic


#: Rows written per table or diff file (the rest are tiny changes; the pstats file has all).
MAX_ROWS = 60


@dataclass(frozen=True)
class Row:
    """One function (or op) on both sides: per-call self time and calls; None = absent."""

    name: str
    a_self_s: float | None
    b_self_s: float | None
    a_calls: float | None
    b_calls: float | None
    #: Device time per call (torch CUDA kernels, JAX device ops); None when not measured.
    a_device_s: float | None = None
    b_device_s: float | None = None

    @property
    def delta_s(self) -> float:
        return (
            (self.a_self_s or 0.0)
            + (self.a_device_s or 0.0)
            - (self.b_self_s or 0.0)
            - (self.b_device_s or 0.0)
        )

    @property
    def delta_calls(self) -> float:
        return (self.a_calls or 0.0) - (self.b_calls or 0.0)

    def side(self, a: str, b: str) -> str:
        if self.b_calls is None:
            return f"only in {a}"
        if self.a_calls is None:
            return f"only in {b}"
        return ""


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:+.1f} us"


def rank(rows: Iterable[Row]) -> list[Row]:
    """Largest change in (self + device) time per call first, then largest change in calls."""
    return sorted(rows, key=lambda r: (-abs(r.delta_s), -abs(r.delta_calls), r.name))


def diff_lines(rows: list[Row], a: str, b: str, *, what: str) -> list[str]:
    """One line per row of `rank(rows)`: the change per call, then the name, then the side."""
    out = []
    for r in rows:
        tag = r.side(a, b)
        line = f"{_us(r.delta_s)}/call {what}, {r.delta_calls:+.3g} calls/call: {r.name}" + (
            f" [{tag}]" if tag else ""
        )
        out.append(line)
    return out


def _join(a: dict[str, tuple], b: dict[str, tuple]) -> list[Row]:
    rows = []
    for name in {**a, **b}:
        ra, rb = a.get(name), b.get(name)
        rows.append(
            Row(
                name,
                ra[0] if ra else None,
                rb[0] if rb else None,
                ra[1] if ra else None,
                rb[1] if rb else None,
                ra[2] if ra and len(ra) > 2 else None,
                rb[2] if rb and len(rb) > 2 else None,
            )
        )
    return rank(rows)


# --------------------------------------------------------------------------- files


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+=-]+", "_", text).strip("_")[:150] or "test"


def test_folder(results_dir: Path, nodeid: str) -> Path:
    """`.perf/profiles/<test>/`: the node id made a file name (`::`, `/`, `[` become `_`)."""
    return results_dir / "profiles" / _safe(nodeid)


def _table_text(table: dict[str, tuple], title: str, what: str) -> str:
    rows = sorted(table.items(), key=lambda kv: -(kv[1][0] + (kv[1][2] if len(kv[1]) > 2 else 0)))
    lines = [
        title,
        f"{'self ' + what + ' us/call':>18} {'device us/call':>15} {'calls/call':>11}  name",
    ]
    for name, v in rows[:MAX_ROWS]:
        device = f"{v[2] * 1e6:15.1f}" if len(v) > 2 else f"{'-':>15}"
        lines.append(f"{v[0] * 1e6:18.1f} {device} {v[1]:11.3g}  {name}")
    return "\n".join(lines) + "\n"


def _write_diff(path: Path, rows: list[Row], a: str, b: str, what: str, header: str) -> list[str]:
    lines = diff_lines(rows, a, b, what=what)
    by_calls = sorted(rows, key=lambda r: (-abs(r.delta_calls), -abs(r.delta_s), r.name))
    text = [
        header,
        f"change per call, {a} - {b}; ranked by change in time, then in calls:",
        *lines[:MAX_ROWS],
        "",
        "ranked by change in calls:",
        *[ln for ln in diff_lines(by_calls, a, b, what=what)[:MAX_ROWS]],
    ]
    write_atomic(path, "\n".join(text) + "\n")
    return lines
