"""The results table: one row per series and one per verdict, as plain text or Markdown.

`rows` is what `perfsuite report` (`_report`) prints under each test, and what the tests read
to check that every kind of series is shown; the memory column and a `perf.memory` row are
filled here too. The terminal summary of a `--perf` run is `_terminal`, which shares these
cells' formatting.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._format import fmt_seconds
from ._results import Series, measurement_series
from ._values import fmt_bytes


HEADER = (
    "measurement",
    "per call",
    "p50",
    "p90",
    "p99",
    "max",
    "per unit",
    "rounds",
    "first call",
    "memory",
    "result",
)


def _row(
    label: str,
    per_call: float | None = None,
    tails: dict[str, Any] | None = None,
    per_unit: str = "",
    rounds: Any = "",
    first: float | None = None,
    result: str = "",
    statistic: str | None = None,
    memory: str = "",
) -> tuple[str, ...]:
    """One table row; `per call` is the measurement's statistic (the mean cost by default,
    marked when it is another), the tails are of chunk (or step) times."""
    tails = tails or {}
    cost = "" if per_call is None else fmt_seconds(per_call)
    if cost and statistic and statistic != "mean":
        cost += f" ({statistic})"
    return (
        label,
        cost,
        *(fmt_seconds(tails[k]) if tails.get(k) is not None else "" for k in _TAILS),
        per_unit,
        str(rounds),
        "" if first is None else fmt_seconds(first),
        memory,
        result,
    )


_TAILS = ("p50", "p90", "p99", "max")


def _per_call(entry: dict[str, Any]) -> float | None:
    # Documents written before the mean became the statistic carry only the round stats.
    if entry.get("per_call_s") is not None:
        return entry["per_call_s"]
    return entry.get("stats", {}).get("median")


def _g(x: Any, spec: str) -> str:
    """A derived number, or "n/a" where the file has null (unbounded, or undefined)."""
    return "n/a" if x is None else format(x, spec)


def _ratio(x: Any, low: Any, high: Any, spec: str = ".3g", suffix: str = "x") -> str:
    return f"{_g(x, spec)}{suffix} [{_g(low, spec)}, {_g(high, spec)}]"


def _candidate_row(label: str, cand: dict[str, Any], per_unit: str = "") -> tuple[str, ...]:
    retraces = cand.get("retraces", 0)
    return _row(
        label,
        _per_call(cand),
        cand.get("tails"),
        per_unit,
        cand.get("stats", {}).get("rounds", ""),
        cand.get("first_call_s"),
        f"{retraces} retraces" if retraces else "",
        cand.get("statistic"),
        memory_cell(cand.get("memory")),
    )


def rows(measurements: Iterable[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per series (`measurement_series`), then one per verdict, in measured order."""
    out: list[tuple[str, ...]] = []
    for m in measurements:
        for s in measurement_series(m):
            out.extend(_series_rows(s))
        if m["kind"] == "compare":
            for v in m["comparison"]["verdicts"]:
                r = v["ratio"]
                if "memory" in v:
                    out.append(
                        _row(
                            f"  {v['assertion']}({r['a']} vs {r['b']})",
                            rounds=1,
                            result=f"{memory_verdict_words(v['memory'])}",
                        )
                    )
                    continue
                out.append(
                    _row(
                        f"  {v['assertion']}({r['a']} vs {r['b']})",
                        rounds=r["rounds"],
                        result=f"{_ratio(r['estimate'], r['low'], r['high'])} {v['verdict']}",
                    )
                )
        # One verdict per series: a comparison has one per candidate (`baselines`).
        several = len(m.get("baselines", [])) > 1
        for b in m["baselines"] if several else [m["baseline"]] if "baseline" in m else []:
            which = f" ({b['series'].rsplit('::', 1)[-1]})" if several else ""
            out.append(
                _row(
                    f"  vs baseline {b.get('name', '')}{which}",
                    rounds=b.get("rounds", ""),
                    result=f"{_ratio(b['ratio'], b['low'], b['high'])} {b['verdict']}",
                )
            )
        for b in m.get("memory_baselines", []):
            out.append(
                _row(
                    f"  vs baseline {b.get('name') or ''} (memory)", result=memory_verdict_words(b)
                )
            )
    return out


def _series_rows(s: Series) -> list[tuple[str, ...]]:
    m = s.measurement
    if s.kind == "measure":
        per = ""
        if m.get("per_unit_s") is not None:
            per = f"{fmt_seconds(m['per_unit_s'])}/{m.get('unit') or 'unit'}"
        return [_candidate_row(s.id, s.entry, per)]
    if s.kind == "compare":
        return [_candidate_row(s.id, s.entry)]
    if s.kind == "steps":
        st = s.entry
        stats = st["stats"]
        return [
            _row(
                s.id,
                _per_call(st),
                st.get("tails"),
                f"{_g(stats['steps_per_s'], '.3g')} steps/s",
                stats["rounds"],
                st["first_step_s"],
                f"{st['retraces']} retraces",
                memory=memory_cell(st.get("memory")),
            )
        ]
    if s.kind == "memory":
        return memory_rows(s)
    if s.kind == "scaling":
        f = s.entry
        out = []
        for size, med, per in zip(
            f["sizes"], f["median_s"], f["per_unit_s"] or [None] * len(f["sizes"])
        ):
            per_text = "" if per is None else f"{fmt_seconds(per)}/{f.get('unit') or 'unit'}"
            out.append(_row(f"{s.id}[{size:g}]", med, per_unit=per_text, rounds=f["rounds"]))
        out.append(
            _row(
                f"  scaling({f['law']})",
                rounds=f["rounds"],
                result=f"slope {_ratio(f['slope'], f['low'], f['high'], '.2f', '')} {m['verdict']}",
            )
        )
        return out
    if s.kind == "record":
        return [_row(s.id, result=f"{m['value']:.4g} {m['unit']}")]
    if s.kind == "counts":
        from ._counts_view import counts_words

        label = "  counts" if m["kind"] != "counts" else s.id
        return [_row(label, result=counts_words(s.entry))]
    return [_row(s.id, result=f"(kind {s.kind!r}: not shown by this perfsuite)")]


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


def _by_test(measurements: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for m in measurements:
        groups.setdefault(m.get("test", m["id"]), []).append(m)
    return groups


# --------------------------------------------------------------------------- memory


def memory_cell(mem: dict[str, Any] | None) -> str:
    """The memory column: a call's peak (`<=` where only a bound is known), `~` if inexact."""
    if not isinstance(mem, dict):
        return ""
    extra = mem.get("extra") or {}
    mark = "<=" if extra.get("peak_is_upper_bound") else "" if mem.get("exact") else "~"
    return f"{mark}{fmt_bytes(mem['peak_bytes'])}"


def memory_rows(s: Series) -> list[tuple[str, ...]]:
    """Rows of a memory series: none for a timed series' (its row has the column), one for
    a `perf.memory` measurement (peak, retained and source)."""
    m = s.measurement
    if s.id != m["id"] or m["kind"] != "memory":
        return []
    mem = s.entry
    return [
        _row(
            s.id,
            memory=memory_cell(mem),
            result=f"retained {fmt_bytes(mem['retained_bytes'])} ({mem['source']})",
        )
    ]


def memory_verdict_words(v: dict[str, Any]) -> str:
    """A memory verdict (`perfsuite._memory.check_growth`) in words, with both byte counts."""
    from ._memory import memory_message

    return memory_message(v)
