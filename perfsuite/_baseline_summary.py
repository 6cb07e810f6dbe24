"""The stored-baseline gate in words: its failure messages and its end-of-run summary.

Every message carries the numbers (the ratio with its interval, the raw times, the
reference's own ratio, the band and where it came from, the rounds) and the rule, and ends
with what the gate can and cannot see (`SEES`).
"""

from __future__ import annotations

from typing import Any

from . import _count_gate, _stats
from ._baseline_judge import DEFAULT_BAND, DEFAULT_BAND_NORMALISED
from ._baseline_sessions import PerfSession
from ._format import fmt_seconds
from ._stats import MIN_SESSIONS


SEES = (
    "The gate judges each series relative to a machine-speed reference timed between the "
    "same rounds (raw times for a series mostly off the CPU or without a reference on both "
    "sides), so it sees whole-session shifts of the "
    "workload beyond the between-session band, not the machine's; it cannot see smaller "
    "effects: use `perfsuite ab`, which pairs processes side by side, for those. A change "
    "that slows the reference too (interpreter, numpy, environment) cancels out of the "
    "normalised ratio and shows in the raw ratio, as inconclusive."
)


class Band(_stats.Band):
    """`perfsuite._stats.Band` with the raw default band (what the tests of the raw rule use)."""

    @classmethod
    def of(cls, values: list[float], default: float = DEFAULT_BAND) -> Band:  # type: ignore[override]
        b = _stats.Band.of(values, default)
        return cls(b.factor, b.sessions, b.estimated, b.spread)

    def describe(self) -> str:
        return _describe(self)


def _describe(band: _stats.Band) -> str:
    if band.estimated:
        return (
            f"band x{band.factor:.3g} estimated from the spread of {band.sessions} "
            f"baseline sessions (SD {band.spread:.1%} of log time)"
        )
    return (
        f"default band x{band.factor:.3g}: only {band.sessions} baseline session"
        f"{'s' if band.sessions != 1 else ''}, fewer than the {MIN_SESSIONS} needed to "
        "estimate the between-session spread"
    )


def _band_of(e: dict[str, Any]) -> _stats.Band:
    return _stats.Band(e["band"], e["sessions"], e["band_estimated"], e["spread"])


def _message(word: str, e: dict[str, Any], cfg: Any) -> str:
    if cfg.fail is not None:
        rule = f"--perf-fail={cfg.fail} fails when the lower bound > {e['limit']:.3g}x"
    else:
        rule = f"regression when the lower bound > {e['limit']:.3g}x (the default 5% limit)"
    raw = (
        f"{fmt_seconds(e['current_s'])} vs {fmt_seconds(e['baseline_s'])}"
        if "raw_ratio" not in e
        else f"raw {e['raw_ratio']:.3g}x: {fmt_seconds(e['current_s'])} vs "
        f"{fmt_seconds(e['baseline_s'])}"
    )
    if e.get("normalised"):
        what = (
            f"{e['statistic']} per session relative to the machine-speed reference "
            f"{e['ratio']:.3g}x the baseline's ({raw}; the reference itself "
            f"{e['reference_ratio']:.3g}x"
        )
    else:
        what = (
            f"{e['statistic']} per session {e['ratio']:.3g}x the baseline's ({raw}; no "
            "machine-speed reference on both sides, raw times judged"
        )
    if e.get("why") == "reference":
        what += (
            f"; the raw ratio alone is a regression (lower bound {e['raw_low']:.3g}x) but the "
            "reference slowed as much: the machine, or a change that slows the reference "
            "too (interpreter, numpy, environment)"
        )
    return (
        f"{word} {e['series']}: {what}; {e['level']:.0%} interval {e['low']:.3g}x.."
        f"{e['high']:.3g}x from the {_describe(_band_of(e))}; {e['rounds']} rounds this "
        f"session, {e['baseline_rounds']} per baseline session). Rule: {rule}. " + SEES
    )


def summary_lines(session: PerfSession) -> list[tuple[str, dict[str, bool]]]:
    """Lines for the end of the run: what was compared, what was not, each inconclusive
    series with its numbers, and what `--perf-save` did."""
    out: list[tuple[str, dict[str, bool]]] = []
    doc = session.document or {}
    b = doc.get("baseline")
    cfg = session.perf_config
    if b is not None:
        counts = ", ".join(f"{n} {w}" for w, n in b["verdicts"].items() if n)
        normalised = b.get("normalised", 0)
        raw = b["compared"] - normalised
        if b["sessions"] >= MIN_SESSIONS:
            band = "band estimated from the sessions"
        else:
            bands = [f"x{DEFAULT_BAND_NORMALISED:g}"] * bool(normalised) + [
                f"x{DEFAULT_BAND:g}"
            ] * bool(raw or not b["compared"])
            band = f"default band {' and '.join(bands)}: fewer than {MIN_SESSIONS} sessions"
        if not raw:
            how = f"{band}; relative to the machine-speed reference"
        elif not normalised:
            how = f"{band}; raw times (no machine-speed reference for them)"
        else:
            how = (
                f"{band}; {normalised} relative to the machine-speed reference, {raw} raw "
                "(no reference on both sides, or mostly off the CPU)"
            )
        out.append(
            (
                f"perf: compared {b['compared']} series with baseline {b['name']} "
                f"({b['sessions']} session{'s' if b['sessions'] != 1 else ''}, {how}; "
                f"{b['statistic']} per session): {counts or 'nothing compared'}",
                {"bold": True, "yellow": not b["compared"]},
            )
        )
        if b["only_in_baseline"]:
            out.append(
                (
                    f"perf: {len(b['only_in_baseline'])} series of baseline {b['name']} were "
                    f"not measured in this run: {', '.join(b['only_in_baseline'])}",
                    {"yellow": True},
                )
            )
        if b["only_in_current"]:
            out.append(
                (
                    f"perf: {len(b['only_in_current'])} series are new (not in baseline "
                    f"{b['name']}): {', '.join(b['only_in_current'])}",
                    {"yellow": True},
                )
            )
        strict = cfg.fail is not None and cfg.fail_inconclusive
        for m in doc.get("measurements", []):
            for e in m.get("baselines", []):
                if e["verdict"] == "inconclusive" and not strict:
                    out.append((f"perf: {_message('INCONCLUSIVE', e, cfg)}", {"yellow": True}))
                if e["verdict"] == "regression" and cfg.fail is None:
                    # Reported, not failed: without --perf-fail nothing fails the session.
                    text = _message("REGRESSION", e, cfg) + " (not failing: no --perf-fail)"
                    out.append((f"perf: {text}", {"yellow": True, "bold": True}))
        for text in (b.get("memory") or {}).get("notes", []):
            out.append((f"perf: {text}", {"yellow": True}))
    out += _count_gate.summary_lines(doc, cfg)
    note = session.save_note
    if note is not None:
        out.append(note)
    return out
