"""The exact gate: counts compared as counts, by `--perf-compare` and `perfsuite ab`.

A deterministic counter (its two readings agreed, in every session it is taken from) that
grows is a regression, named with the counter, both values and the delta; one that shrinks
is an improvement, reported. There is no tolerance and no interval: the counts of unchanged
code on an unchanged toolchain do not move (docs/calibration-counts.md: 100 A/A sessions, 0
differences). A counter that is non-deterministic on either side, or differs between the
baseline's own sessions, is listed and never gated.

What counts depend on besides the code is the toolchain: the Python version (the calls the
standard library makes), JAX/jaxlib (dispatch code, XLA's passes and cost model), torch,
and XLA flags. When the fingerprints' toolchains differ, a count change is labelled
"toolchain changed" and does not fail unless asked (`--perf-fail-counts-toolchain`,
`perfsuite ab --fail-counts-toolchain`).
"""

from __future__ import annotations

from typing import Any

from ._results import iter_series


#: Fingerprint fields the counts depend on (`perfsuite._machine.fingerprint`).
TOOLCHAIN_KEYS = ("python", "versions.jax", "versions.jaxlib", "versions.torch", "xla_flags")


def toolchain(doc: dict[str, Any]) -> dict[str, Any]:
    machine = doc.get("machine") or {}
    out = {}
    for key in TOOLCHAIN_KEYS:
        value: Any = machine
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        out[key] = value
    return out


def toolchain_changes(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """`key: baseline -> current` for every toolchain field that differs."""
    return [f"{k}: {b.get(k)!r} -> {a.get(k)!r}" for k in TOOLCHAIN_KEYS if a.get(k) != b.get(k)]


def count_values(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`{series id: {"values": {counter: n}, "unstable": [counters]}}` of a document."""
    out = {}
    for s in iter_series(doc):
        if s.kind != "counts":
            continue
        counts = s.entry.get("counts") or {}
        out[s.id] = {
            "values": dict(counts.get("values", {})),
            "unstable": sorted(counts.get("unstable", {})),
        }
    return out


def judge(
    current: dict[str, dict[str, Any]],
    baselines: list[dict[str, dict[str, Any]]],
    *,
    changed: list[str],
    strict: bool,
) -> dict[str, Any]:
    """Every counter of `current` against the baseline sessions' (oldest first).

    Returns `{"entries": [...], "same": n, "ungated": [...]}`; an entry per counter that
    changed: `series, counter, current, baseline, delta, verdict` (`regression`,
    `improvement`, or with a toolchain change and not `strict`, `toolchain changed`).
    """
    entries, ungated, same = [], [], 0
    for sid, cur in current.items():
        seen = [b[sid] for b in baselines if sid in b]
        if not seen:
            continue
        for key, value in cur["values"].items():
            olds = [b["values"][key] for b in seen if key in b["values"]]
            if not olds:
                continue
            unstable = key in cur["unstable"] or any(key in b["unstable"] for b in seen)
            if unstable or len(set(olds)) > 1:
                why = (
                    "non-deterministic readings"
                    if unstable
                    else f"baseline sessions differ {sorted(set(olds))}"
                )
                ungated.append(f"{sid} {key} ({why})")
                continue
            old = olds[-1]
            if value == old:
                same += 1
                continue
            if changed and not strict:
                verdict = "toolchain changed"
            else:
                verdict = "regression" if value > old else "improvement"
            entries.append(
                {
                    "series": sid,
                    "counter": key,
                    "current": value,
                    "baseline": old,
                    "delta": value - old,
                    "verdict": verdict,
                    "toolchain": list(changed),
                }
            )
    return {"entries": entries, "same": same, "ungated": ungated, "toolchain": list(changed)}


def message(e: dict[str, Any]) -> str:
    sign = "+" if e["delta"] > 0 else ""
    text = (
        f"COUNT {e['verdict'].upper()} {e['series']}: {e['counter']} {e['current']:,} vs "
        f"baseline {e['baseline']:,} ({sign}{e['delta']:,}, exact)"
    )
    if e["toolchain"]:
        text += f"; toolchain changed: {', '.join(e['toolchain'])}"
    return text


# --------------------------------------------------------------------------- --perf-compare


def apply(session: Any, sessions: list[Any]) -> None:
    """Judge the session's counts against the baseline sessions (`_baseline.apply`)."""
    cfg = session.perf_config
    doc = session.document
    current = count_values(doc)
    baselines = [getattr(s, "counts", None) or {} for s in sessions]
    if not current or not any(baselines):
        return
    changed = toolchain_changes(toolchain(doc), getattr(sessions[-1], "toolchain", {}) or {})
    strict = bool(getattr(cfg, "fail_counts_toolchain", False))
    result = judge(current, baselines, changed=changed, strict=strict)
    doc.setdefault("baseline", {})["counts"] = result
    by_series: dict[str, list[dict[str, Any]]] = {}
    for e in result["entries"]:
        by_series.setdefault(e["series"], []).append(e)
    for m in doc["measurements"]:
        for sid in _count_ids(m):
            if sid in by_series:
                m.setdefault("count_baselines", []).extend(by_series[sid])
    for e in result["entries"]:
        if e["verdict"] == "regression" and cfg.fail is not None:
            session.errors.append(message(e) + ". Rule: any increase of a deterministic count.")


def _count_ids(m: dict[str, Any]) -> list[str]:
    from ._results import measurement_series

    return [s.id for s in measurement_series(m) if s.kind == "counts"]


def summary_lines(doc: dict[str, Any], cfg: Any) -> list[tuple[str, dict[str, bool]]]:
    """End-of-run lines: what the exact gate compared, every change, what it could not gate."""
    result = (doc.get("baseline") or {}).get("counts")
    if not result:
        return []
    entries = result["entries"]
    words = [e["verdict"] for e in entries]
    tally = ", ".join(f"{words.count(w)} {w}" for w in dict.fromkeys(words))
    out = [
        (
            f"perf: counts vs baseline: {result['same']} the same"
            + (f", {tally}" if tally else "")
            + (
                f", {len(result['ungated'])} not gated (non-deterministic)"
                if result["ungated"]
                else ""
            ),
            {"bold": True},
        )
    ]
    for e in entries:
        failing = e["verdict"] == "regression" and cfg.fail is not None
        if not failing:  # failing ones are in the session's errors already
            suffix = " (not failing: no --perf-fail)" if e["verdict"] == "regression" else ""
            out.append((f"perf: {message(e)}{suffix}", {"yellow": True}))
    return out


# --------------------------------------------------------------------------- perfsuite ab


def ab_verdicts(
    base_runs: list[dict[str, dict[str, Any]]],
    head_runs: list[dict[str, dict[str, Any]]],
    *,
    base_toolchain: dict[str, Any],
    head_toolchain: dict[str, Any],
    strict: bool,
) -> dict[str, Any]:
    """`perfsuite ab`'s exact verdicts: every HEAD run's counts against BASE's runs.

    A counter must be the same in every run of a side to be gated (else not gated); then
    HEAD's value against BASE's, exactly.
    """
    changed = toolchain_changes(head_toolchain, base_toolchain)
    head: dict[str, dict[str, Any]] = {}
    for run in head_runs:
        for sid, c in run.items():
            h = head.setdefault(sid, {"values": {}, "unstable": set()})
            for k, v in c["values"].items():
                if k in h["values"] and h["values"][k] != v:
                    h["unstable"].add(k)
                h["values"].setdefault(k, v)
            h["unstable"].update(c["unstable"])
    for h in head.values():
        h["unstable"] = sorted(h["unstable"])
    result = judge(head, base_runs, changed=changed, strict=strict)
    result["failed"] = any(e["verdict"] == "regression" for e in result["entries"])
    return result
