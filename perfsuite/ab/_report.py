"""Rendering of `perfsuite ab` results: terminal text, Markdown, JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._format import fmt_seconds


def _ci(m: dict[str, Any]) -> str:
    if m["low"] is None or m["high"] is None:
        return "n/a"
    return f"[{m['low']:.3f}, {m['high']:.3f}]"


def _rows(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for m in doc["measurements"]:
        ratio = "n/a" if m["ratio"] is None else f"{m['ratio']:.3f}x"
        rows.append(
            (
                m["series"],
                m["statistic"],
                fmt_seconds(m["base_s"]),
                fmt_seconds(m["head_s"]),
                ratio,
                _ci(m),
                str(m["pairs"]),
                m["verdict"],
            )
        )
    return rows


def _dirty(doc: dict[str, Any], mark: str = "") -> str:
    dirty = doc["head"].get("dirty")
    return f" {mark}+ uncommitted changes (dirty){mark}" if dirty else ""


HEADER = ("measurement", "per run", "BASE", "HEAD", "HEAD/BASE", "interval", "pairs", "verdict")
_OVERALL = {0: "no regression", 1: "REGRESSION", 2: "error", 3: "INCONCLUSIVE"}


def render_text(doc: dict[str, Any]) -> str:
    rule = doc["rule"]
    table = [HEADER, *_rows(doc)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    lines = [
        f"perfsuite ab: BASE {doc['base']['rev']} ({doc['base']['commit'][:10]}) vs "
        f"HEAD {doc['head']['rev']} ({doc['head']['commit'][:10]}{_dirty(doc)})",
        "",
        *("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table[:1]),
        "  ".join("-" * w for w in widths),
        *("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table[1:]),
        "",
        f"rule: regression if the {rule['level']:.0%} interval of HEAD/BASE (paired "
        f"{rule['test']} over run pairs) lies above {rule['limit']:.3g}x (--fail {rule['fail']}); "
        f"no regression if it lies at or below; stopped: {doc['stopped']} after "
        f"{doc['seconds']:.0f} s.",
    ]
    lines += memory_lines(doc)
    lines += [f"warning: {w}" for w in doc["warnings"]]
    lines += _count_lines(doc)
    lines.append(f"verdict: {_OVERALL[doc['exit_code']]}")
    return "\n".join(lines)


def render_markdown(doc: dict[str, Any]) -> str:
    rule = doc["rule"]
    lines = [
        f"### perfsuite ab: {_OVERALL[doc['exit_code']]}",
        "",
        f"BASE `{doc['base']['rev']}` (`{doc['base']['commit'][:10]}`) vs HEAD "
        f"`{doc['head']['rev']}` (`{doc['head']['commit'][:10]}`{_dirty(doc, '**')}), "
        "interleaved processes.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    for r in _rows(doc):
        cells = [c.replace("|", "\\|") for c in r]
        cells[0] = f"`{cells[0]}`"
        if r[-1] == "regression":
            cells[-1] = "**regression**"
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Rule: regression if the {rule['level']:.0%} interval of HEAD/BASE lies above "
        f"{rule['limit']:.3g}x (`--fail {rule['fail']}`, paired {rule['test']} test); "
        f"stopped: {doc['stopped']} after {doc['seconds']:.0f} s.",
    ]
    lines += [f"- {line}" for line in memory_lines(doc)]
    lines += [f"- warning: {w}" for w in doc["warnings"]]
    lines += [f"- {line}" for line in _count_lines(doc)]
    return "\n".join(lines) + "\n"


def _count_lines(doc: dict[str, Any]) -> list[str]:
    """The exact tier: counts compared exactly (`_count_gate.ab_verdicts`), if any."""
    from .._count_gate import message

    counts = doc.get("counts") or {}
    if not counts.get("entries") and not counts.get("same"):
        return []
    out = [f"counts: {counts.get('same', 0)} the same, {len(counts['entries'])} changed"]
    out += [message(e) for e in counts["entries"]]
    if counts.get("ungated"):
        out.append(f"counts not gated (non-deterministic): {', '.join(counts['ungated'])}")
    return out


def write_json_report(path: Path, doc: dict[str, Any]) -> None:
    from .._results import write_atomic

    write_atomic(path, json.dumps(doc, indent=1) + "\n")


def memory_lines(doc: dict[str, Any]) -> list[str]:
    """One line per memory verdict (HEAD against BASE), with both byte counts and the source."""
    from .._memory import memory_message

    verdicts = doc.get("memory") or []
    return ([""] if verdicts else []) + [memory_message(v) for v in verdicts]
