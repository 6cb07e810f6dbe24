"""Render results (as stored in the JSON document) as a terminal or Markdown table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._format import fmt_seconds


HEADER = ("measurement", "median", "min", "per unit", "rounds", "first call", "result")


def _candidate_row(label: str, cand: dict[str, Any], per_unit: str = "") -> tuple[str, ...]:
    stats = cand.get("stats", {})
    retraces = cand.get("retraces", 0)
    return (
        label,
        fmt_seconds(stats.get("median")),
        fmt_seconds(stats.get("min")),
        per_unit,
        str(stats.get("rounds", "")),
        fmt_seconds(cand.get("first_call_s")),
        f"{retraces} retraces" if retraces else "",
    )


def rows(measurements: Iterable[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per timed thing, plus one per verdict, in the order they were measured."""
    out: list[tuple[str, ...]] = []
    for m in measurements:
        mid = m["id"]
        kind = m["kind"]
        if kind == "measure":
            per = ""
            if m.get("per_unit_s") is not None:
                per = f"{fmt_seconds(m['per_unit_s'])}/{m.get('unit') or 'unit'}"
            out.append(_candidate_row(mid, m["candidate"], per))
        elif kind == "compare":
            comparison = m["comparison"]
            for cand in comparison["candidates"]:
                out.append(_candidate_row(f"{m['test']}::{cand['name']}", cand))
            for v in comparison["verdicts"]:
                r = v["ratio"]
                out.append(
                    (
                        f"  {v['assertion']}({r['a']} vs {r['b']})",
                        "",
                        "",
                        "",
                        str(r["rounds"]),
                        "",
                        f"{r['estimate']:.3g}x [{r['low']:.3g}, {r['high']:.3g}] {v['verdict']}",
                    )
                )
        elif kind == "steps":
            s = m["steps"]
            stats = s["stats"]
            out.append(
                (
                    mid,
                    fmt_seconds(stats["median"]),
                    fmt_seconds(stats["min"]),
                    f"{stats['steps_per_s']:.3g} steps/s",
                    str(stats["rounds"]),
                    fmt_seconds(s["first_step_s"]),
                    f"{s['retraces']} retraces",
                )
            )
        elif kind == "scaling":
            f = m["scaling"]
            for size, med, per in zip(
                f["sizes"], f["median_s"], f["per_unit_s"] or [None] * len(f["sizes"])
            ):
                per_text = "" if per is None else f"{fmt_seconds(per)}/{f.get('unit') or 'unit'}"
                out.append(
                    (f"{mid}[{size:g}]", fmt_seconds(med), "", per_text, str(f["rounds"]), "", "")
                )
            out.append(
                (
                    f"  scaling({f['law']})",
                    "",
                    "",
                    "",
                    str(f["rounds"]),
                    "",
                    f"slope {f['slope']:.2f} [{f['low']:.2f}, {f['high']:.2f}] {m['verdict']}",
                )
            )
        elif kind == "record":
            out.append((mid, "", "", "", "", "", f"{m['value']:.4g} {m['unit']}"))
        if "baseline" in m:
            b = m["baseline"]
            out.append(
                (
                    f"  vs baseline {b.get('name', '')}",
                    "",
                    "",
                    "",
                    str(b.get("rounds", "")),
                    "",
                    f"{b['ratio']:.3g}x [{b['low']:.3g}, {b['high']:.3g}] {b['verdict']}",
                )
            )
    return out


def text_table(measurements: Iterable[dict[str, Any]]) -> str:
    body = rows(measurements)
    table = [HEADER, *body]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(measurements: Iterable[dict[str, Any]]) -> str:
    body = rows(measurements)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in body:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)
