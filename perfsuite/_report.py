"""`perfsuite report`: a results document as text or Markdown (for `$GITHUB_STEP_SUMMARY`).

A header (machine, commit, baseline), one table per test (`_report_table`), the verdicts
that did not pass with their numbers, plot files and the comparisons' profiles. The tables
and the terminal summary (`_terminal`) are re-exported here for the plugin and the tests.
"""

from __future__ import annotations

from typing import Any

from ._report_table import HEADER as HEADER
from ._report_table import _by_test, _g, _ratio
from ._report_table import markdown_table as markdown_table
from ._report_table import memory_cell as memory_cell
from ._report_table import memory_rows as memory_rows
from ._report_table import memory_verdict_words as memory_verdict_words
from ._report_table import rows as rows
from ._report_table import text_table as text_table
from ._terminal import TERMINAL_HEADER as TERMINAL_HEADER
from ._terminal import compact_tails as compact_tails
from ._terminal import speed_words as speed_words
from ._terminal import terminal_table as terminal_table
from ._terminal import with_memory_cell as with_memory_cell


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
