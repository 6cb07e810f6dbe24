"""Render results (as stored in the JSON document) as a terminal or Markdown table."""

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


def markdown_table(measurements: Iterable[dict[str, Any]]) -> str:
    body = rows(measurements)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in body:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- `perfsuite report`


def _by_test(measurements: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for m in measurements:
        groups.setdefault(m.get("test", m["id"]), []).append(m)
    return groups


def _header_lines(doc: dict[str, Any]) -> list[str]:
    machine = doc.get("machine", {})
    commit = doc.get("commit") or {}
    where = machine.get("accelerator") or machine.get("cpu_model", "?")
    dirty = " (dirty)" if commit.get("dirty") else ""
    lines = [
        f"machine {machine.get('id', '?')}: {where}, {machine.get('cores', '?')} cores",
        f"commit {(commit.get('id') or '?')[:10]}{dirty}, created {doc.get('created', '?')}",
    ]
    if doc.get("baseline"):
        b = doc["baseline"]
        lines.append(
            f"baseline {b.get('path')} (commit {((b.get('commit') or {}).get('id') or '?')[:10]})"
        )
    return lines


def _failures(doc: dict[str, Any]) -> list[str]:
    """Verdicts that are not a pass, one line each, with the numbers."""
    out = []
    for m in doc.get("measurements", []):
        if m["kind"] == "compare":
            for v in m["comparison"]["verdicts"]:
                if v["verdict"] != "pass" and "memory" in v:
                    out.append(
                        f"{v['verdict']}: {m['id']} {v['assertion']}: "
                        f"{memory_verdict_words(v['memory'])}"
                    )
                elif v["verdict"] != "pass":
                    r = v["ratio"]
                    out.append(
                        f"{v['verdict']}: {m['id']} {v['assertion']}({r['a']} vs {r['b']}) "
                        f"{_ratio(r['estimate'], r['low'], r['high'])} over "
                        f"{r['rounds']} rounds; {v['rule']}"
                    )
        elif m["kind"] == "scaling" and m.get("verdict") != "pass":
            f = m["scaling"]
            out.append(
                f"{m.get('verdict')}: {m['id']} slope {_ratio(f['slope'], f['low'], f['high'], '.3f', '')}"
                f" over {f['rounds']} rounds; `{f['law']}` expects "
                f"{_g(f['expected'], '.3f')} +/- {f['tolerance']:g}"
            )
        for b in m.get("memory_baselines", []):
            if b["verdict"] == "regression":
                out.append(f"regression vs baseline: {memory_verdict_words(b)}")
        for b in m.get("baselines", []):
            if b["verdict"] in ("regression", "inconclusive"):
                out.append(
                    f"{b['verdict']} vs baseline: {b['series']} {_ratio(b['ratio'], b['low'], b['high'])} "
                    f"({b['rounds']} vs {b['baseline_rounds']} "
                    f"rounds); limit {_g(b['limit'], '.3g')}x"
                )
    return out


def text_report(doc: dict[str, Any], *, plots: dict[str, list[Any]] | None = None) -> str:
    """The results document as text: a header, one table per test, verdicts, plot files."""
    plots = plots or {}
    lines = _header_lines(doc)
    for test, ms in _by_test(doc.get("measurements", [])).items():
        lines += ["", test, text_table(ms)]
        for m in ms:
            lines += [f"  plot: {p}" for p in plots.get(m["id"], [])]
    if not doc.get("measurements"):
        lines += ["", "no measurements"]
    failures = _failures(doc)
    if failures:
        lines += ["", *failures]
    lines += _profile_text_lines(doc)
    return "\n".join(lines)


def _profile_text_lines(doc: dict[str, Any]) -> list[str]:
    """Each comparison's profiles in plain text: the diffs' files with their top lines."""
    from ._results import iter_profiles

    out: list[str] = []
    for p in iter_profiles(doc):
        sides = f"{p.a} against {p.b}" if p.b is not None else f"{p.a} alone"
        out += ["", f"profiles: {p.measurement} ({sides})"]
        for kind, diff in p.diffs.items():
            out.append(f"  {kind} diff: {diff}")
            out += [f"    {line}" for line in p.top.get(kind, [])]
        for kind, files in p.artifacts.items():
            out.append(f"  {kind}: " + ", ".join(files))
    return out


def markdown_report(
    doc: dict[str, Any], *, plots: dict[str, list[Any]] | None = None, relative_to: Any = None
) -> str:
    """The results document as Markdown (for `$GITHUB_STEP_SUMMARY`), plots as images."""
    import os

    plots = plots or {}
    lines = ["## perfsuite results", "", *(f"- {line}" for line in _header_lines(doc))]
    for test, ms in _by_test(doc.get("measurements", [])).items():
        lines += ["", f"### `{test}`", "", markdown_table(ms)]
        for m in ms:
            for p in plots.get(m["id"], []):
                target = os.path.relpath(p, relative_to) if relative_to is not None else str(p)
                lines += ["", f"![{m['id']}]({target})"]
    if not doc.get("measurements"):
        lines += ["", "No measurements."]
    failures = _failures(doc)
    if failures:
        lines += ["", "### Not passed", "", *(f"- {f}" for f in failures)]
    lines += _profile_lines(doc, relative_to)
    return "\n".join(lines)


def _profile_lines(doc: dict[str, Any], relative_to: Any) -> list[str]:
    """Issue 16: links to each comparison's profiles, with the top of its diffs."""
    import os

    from ._results import iter_profiles

    out: list[str] = []
    for p in iter_profiles(doc):

        def link(path: str) -> str:
            target = os.path.relpath(path, relative_to) if relative_to is not None else path
            return f"[{os.path.basename(path)}]({target})"

        sides = f"{p.a} against {p.b}" if p.b is not None else f"{p.a} alone"
        out += ["", f"#### Profiles: `{p.measurement}` ({sides})", ""]
        for kind, diff in p.diffs.items():
            out.append(f"- {kind} diff {link(diff)}:")
            out += [f"  - `{line}`" for line in p.top.get(kind, [])]
        for kind, files in p.artifacts.items():
            out.append(f"- {kind}: " + ", ".join(link(f) for f in files))
    return out


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


def memory_verdict_words(v: dict[str, Any]) -> str:
    """A memory verdict (`perfsuite._memory.check_growth`) in words, with both byte counts."""
    from ._memory import memory_message

    return memory_message(v)
