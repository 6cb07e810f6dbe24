"""The terminal summary of a `--perf` run (`terminal_table`), within 120 columns.

Grouped by test, candidate names short (full ids with `-v`), the tails in one column, and
each verdict a sentence under its rows; ratios read one way (`speed_words`: "2.7x faster",
"1.2x slower", never a `0.83x` that means slower beside `117x` faster).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._format import fmt_seconds
from ._report_table import (
    _TAILS,
    _by_test,
    _g,
    _per_call,
    _ratio,
    memory_cell,
    memory_verdict_words,
)
from ._results import Series, measurement_series
from ._values import fmt_bytes


def _unit_of(seconds: float) -> tuple[str, float]:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale:
            return unit, scale
    return "ns", 1e-9


def compact_tails(tails: dict[str, Any] | None) -> str:
    """`p50/p90/p99/max` in one unit, e.g. `1.09/1.12/15.2/16 ms`."""
    if not tails or tails.get("max") is None:
        return ""
    unit, scale = _unit_of(tails["max"])
    return "/".join(f"{tails[k] / scale:.3g}" for k in _TAILS) + f" {unit}"


def _inverse(x: Any) -> float | None:
    return None if x is None or not x > 0 else 1 / x


def speed_words(a: str, b: str, estimate: Any, low: Any, high: Any) -> str:
    """A speedup `t_b / t_a` read one way: `a 2.7x faster than b [2.1x, 3.8x]`, or
    `a 1.2x slower than b [...]`: never a `0.83x` that means slower beside `117x` faster."""
    if estimate is None or not estimate > 0:
        return f"{a} vs {b}: n/a"
    if estimate >= 1:
        return f"{a} {estimate:.3g}x faster than {b} [{_g(low, '.3g')}x, {_g(high, '.3g')}x]"
    return (
        f"{a} {1 / estimate:.3g}x slower than {b} "
        f"[{_g(_inverse(high), '.3g')}x, {_g(_inverse(low), '.3g')}x]"
    )


def _slowdown_words(ratio: Any, low: Any, high: Any) -> str:
    """A time ratio `current / baseline`, said as what it is (`1.08x the baseline's time`)."""
    return f"{_g(ratio, '.3g')}x the baseline's time [{_g(low, '.3g')}x, {_g(high, '.3g')}x]"


def _reference_words(b: dict[str, Any]) -> str:
    """What the stored-baseline gate normalised (`perfsuite._baseline_judge`): the raw ratio
    and the machine-speed reference's own, so a global slowdown stays visible."""
    if not b.get("normalised"):
        return ""
    return (
        f" (machine-normalised; raw {_g(b.get('raw_ratio'), '.3g')}x, reference "
        f"{_g(b.get('reference_ratio'), '.3g')}x)"
    )


TERMINAL_HEADER = (
    "",
    "per call",
    "p50/p90/p99/max",
    "per unit",
    "rounds",
    "first call",
    "memory",
    "",
)


def terminal_table(
    measurements: Iterable[dict[str, Any]], *, verbose: bool = False, width: int = 120
) -> str:
    """The terminal summary: grouped by test, short names (full ids with `verbose`), tails in
    one column, verdicts as sentences under their rows, ratios spelled out as faster or
    slower; names are shortened so that lines fit `width` columns."""
    out: list[str] = []
    for test, ms in _by_test(measurements).items():
        cells: list[tuple[str, ...]] = []
        order: list[tuple[str, Any]] = []  # ("row", index) or ("line", text)
        for m in ms:
            for srs in measurement_series(m):
                for cell in with_memory_cell(_terminal_cells(srs, verbose), srs):
                    order.append(("row", len(cells)))
                    cells.append(cell)
                if srs.kind == "scaling":
                    f = srs.entry
                    order.append(
                        (
                            "line",
                            f"scaling({f['law']}): slope {_ratio(f['slope'], f['low'], f['high'], '.2f', '')}"
                            f", `{f['law']}` is {_g(f.get('expected'), '.2f')} +/- "
                            f"{f.get('tolerance', 0):g}: {m['verdict']}",
                        )
                    )
            if m["kind"] == "compare":
                for v in m["comparison"]["verdicts"]:
                    r = v["ratio"]
                    if "memory" in v:
                        order.append(
                            ("line", f"{v['assertion']}: {memory_verdict_words(v['memory'])}")
                        )
                        continue
                    words = speed_words(r["a"], r["b"], r["estimate"], r["low"], r["high"])
                    order.append(
                        (
                            "line",
                            f"{v['assertion']}: {words} over {r['rounds']} rounds: {v['verdict']}",
                        )
                    )
            several = len(m.get("baselines", [])) > 1
            for b in m["baselines"] if several else [m["baseline"]] if "baseline" in m else []:
                which = f" ({b['series'].rsplit('::', 1)[-1]})" if several else ""
                order.append(
                    (
                        "line",
                        f"vs baseline {b.get('name', '')}{which}: "
                        f"{_slowdown_words(b['ratio'], b['low'], b['high'])}: {b['verdict']}"
                        + _reference_words(b),
                    )
                )
            for b in m.get("memory_baselines", []):
                order.append(
                    ("line", f"vs baseline {b.get('name') or ''}: {memory_verdict_words(b)}")
                )
        table = [TERMINAL_HEADER, *cells]
        widths = [max(len(row[i]) for row in table) for i in range(len(TERMINAL_HEADER))]
        # Names give way first: the other columns are numbers a reader compares.
        room = width - 2 - sum(widths[1:]) - 2 * (len(widths) - 1)
        if not verbose and widths[0] > max(room, 12):
            widths[0] = max(room, 12)

        def fmt(row: tuple[str, ...], widths: list[int] = widths) -> str:
            return (
                "  "
                + "  ".join(
                    _fit(cell, w) if i == 0 else cell.ljust(w)
                    for i, (cell, w) in enumerate(zip(row, widths))
                ).rstrip()
            )

        out.append(test)
        out.append(fmt(TERMINAL_HEADER))
        for what, item in order:
            out.append(fmt(cells[item]) if what == "row" else f"    {item}")
    return "\n".join(out)


def _fit(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: width - 3] + "..."


def _terminal_cells(s: Series, verbose: bool) -> list[tuple[str, ...]]:
    label = s.id if verbose else s.name
    m = s.measurement
    if s.kind == "memory":
        # A timed series' memory is its row's memory column; `perf.memory` gets a row.
        if s.id != m["id"] or m["kind"] != "memory":
            return []
        return [(label, "", "", "", "", "", "")]
    if s.kind in ("measure", "compare"):
        c = s.entry
        per = ""
        if s.kind == "measure" and m.get("per_unit_s") is not None:
            per = f"{fmt_seconds(m['per_unit_s'])}/{m.get('unit') or 'unit'}"
        cost = _per_call(c)
        cost_text = "" if cost is None else fmt_seconds(cost)
        if cost_text and c.get("statistic") not in (None, "mean"):
            cost_text += f" ({c['statistic']})"
        retraces = c.get("retraces", 0)
        return [
            (
                label,
                cost_text,
                compact_tails(c.get("tails")),
                per,
                str(c.get("stats", {}).get("rounds", "")),
                fmt_seconds(c.get("first_call_s")),
                f"{retraces} retraces" if retraces else "",
            )
        ]
    if s.kind == "steps":
        st = s.entry
        stats = st["stats"]
        return [
            (
                label,
                fmt_seconds(_per_call(st)),
                compact_tails(st.get("tails")),
                f"{_g(stats['steps_per_s'], '.3g')} steps/s",
                str(stats["rounds"]),
                fmt_seconds(st["first_step_s"]),
                f"{st['retraces']} retraces",
            )
        ]
    if s.kind == "scaling":
        f = s.entry
        units = f["per_unit_s"] or [None] * len(f["sizes"])
        return [
            (
                f"{label}[{size:g}]",
                fmt_seconds(med),
                "",
                "" if per is None else f"{fmt_seconds(per)}/{f.get('unit') or 'unit'}",
                str(f["rounds"]),
                "",
                "",
            )
            for size, med, per in zip(f["sizes"], f["median_s"], units)
        ]
    if s.kind == "record":
        return [(label, "", "", "", "", "", f"{m['value']:.4g} {m['unit']}")]
    if s.kind == "counts":
        from ._counts_view import counts_words

        shown = "  counts" if m["kind"] != "counts" else label
        return [(shown, "", "", "", "", "", counts_words(s.entry))]
    return [(label, "", "", "", "", "", f"(kind {s.kind!r})")]


def with_memory_cell(cells: list[tuple[str, ...]], s: Series) -> list[tuple[str, ...]]:
    """Terminal cells with the memory column (before the last) filled from the series' entry
    (a `perf.memory` measurement's entry is the memory itself)."""
    mem = s.entry if s.kind == "memory" else s.entry.get("memory")
    out = []
    for i, cell in enumerate(cells):
        text = memory_cell(mem) if i == 0 else ""
        out.append((*cell[:-1], text, cell[-1]))
    if s.kind == "memory" and out:
        out[0] = (
            *out[0][:-1],
            f"retained {fmt_bytes(s.entry['retained_bytes'])} ({s.entry['source']})",
        )
    return out
