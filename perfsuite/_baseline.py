"""Stored baselines: `--perf-save`, `--perf-compare`, `--perf-fail`.

The unit of replication is the session. Whole processes of identical code differ: on the
2-core CI VM the median time of one loop moved by 0.55x-1.5x from one pytest process to the
next, now and then 2.7x (docs/calibration-baseline.md), while the rounds inside one process
vary by 1-3%. A verdict built from rounds of one process on each side cried wolf in 9 of 12
A/A sessions. So:

- A baseline NAME holds one results file per saved session,
  `.perf/<machine-id>/NNNN_<NAME>.json`; `--perf-save=NAME` again adds a session, and only the
  newest `MAX_SESSIONS` are kept.
- Each series is reduced to one number per session: the `STAT` of `--perf-fail=STAT:PCT`
  (`min`, `median`, `mean`) over the session's rounds, median by default, exactly as
  `perfsuite ab` reduces a run (`run_statistics`).
- The current session's number is compared with the centre (median) of the baseline's
  sessions. The interval of the ratio is `[ratio / band, ratio * band]`, where `band` is
  what the between-session spread allows at 99%: estimated from the log of the per-session
  numbers when there are at least `MIN_SESSIONS` of them, otherwise the stated, conservative
  `DEFAULT_BAND` (calibrated on the CI VM: 0 of 100 A/A sessions failed).
- Only a slowdown whose *lower* bound exceeds the `--perf-fail` limit is a regression. A
  point estimate beyond the limit whose interval reaches below it is inconclusive, reported
  at the end of the run and in the JSON (a failure with `--perf-fail-inconclusive`).

What the gate can see: a whole-session shift beyond the band. What it cannot see: effects
smaller than the band; `perfsuite ab` pairs processes side by side for those.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pytest

from . import _count_gate
from ._format import fmt_seconds
from ._memory_gate import apply_memory, gate_errors, memory_readings
from ._results import (
    MACHINE_KEYS,
    SchemaError,
    load_document,
    machine_fingerprint,
    run_statistics,
    series,
    write_json,
)


class PerfSession(Protocol):
    """What the gate reads and writes of the session (`perfsuite._session.PerfSession`, which
    imports this module, not the other way round)."""

    config: pytest.Config
    perf_config: Any
    document: dict[str, Any] | None
    measurements: list[dict[str, Any]]
    errors: list[str]
    baseline_sessions: list[Any]
    incomplete: str | None
    saved_path: Path | None
    save_note: str | None


#: Sessions kept per baseline name; `--perf-save` deletes older ones beyond this.
MAX_SESSIONS = 20
#: Fewest sessions from which the between-session spread is estimated.
MIN_SESSIONS = 5
#: Multiplicative band used with fewer than `MIN_SESSIONS` sessions: about the most that one
#: session of identical code differs from another. On the 2-core CI VM, 100 A/A sessions
#: against 1-session baselines read 0.55x-1.51x and none failed; 2x was caught in 80% (the
#: rest read 1.3x-1.85x, reported inconclusive). Narrower would fail unchanged code, wider
#: would stop catching 2x (docs/calibration-baseline.md).
DEFAULT_BAND = 1.8
#: Smallest between-session spread (SD of log times) the estimate may claim: a handful of
#: quiet sessions does not prove that the next one will be as quiet. On the CI VM five
#: sessions saved back to back varied by 3%, sessions minutes apart by 10-20%.
SPREAD_FLOOR = 0.06
#: Two-sided level of the interval.
LEVEL = 0.99
# Student t quantiles at 0.995 by degrees of freedom (scipy.stats.t.ppf; scipy.stats costs
# ~0.7 s to import at the start of every --perf process). Beyond 30, the normal's 2.576.
_T995 = {
    4: 4.6041, 5: 4.0321, 6: 3.7074, 7: 3.4995, 8: 3.3554, 9: 3.2498, 10: 3.1693,
    11: 3.1058, 12: 3.0545, 13: 3.0123, 14: 2.9768, 15: 2.9467, 16: 2.9208, 17: 2.8982,
    18: 2.8784, 19: 2.8609, 20: 2.8453, 25: 2.7874, 30: 2.75,
}  # fmt: skip

SEES = (
    "The gate sees whole-session shifts beyond the between-session band; it cannot see "
    "smaller effects: use `perfsuite ab`, which pairs processes side by side, for those."
)


def _t995(df: int) -> float:
    if df > 30:
        return 2.5758
    return _T995[max(k for k in _T995 if k <= df)]  # rounding df down: conservative


@dataclass(frozen=True)
class Band:
    """How far one session may differ from the baseline's centre by noise alone."""

    #: Multiplicative half-width: the interval of a ratio `r` is `[r / factor, r * factor]`.
    factor: float
    #: Baseline sessions behind it.
    sessions: int
    #: True when estimated from the sessions, False for `DEFAULT_BAND`.
    estimated: bool
    #: SD of the log per-session numbers (after the floor), when estimated.
    spread: float | None

    @classmethod
    def of(cls, values: list[float]) -> Band:
        k = len(values)
        if k < MIN_SESSIONS:
            return cls(DEFAULT_BAND, k, False, None)
        # SD rather than a MAD: an unusual baseline session widens the band (the gate sees
        # less) instead of being discarded (which would understate process noise and fail
        # unchanged code). The centre is the median, so that session does not move it.
        spread = max(float(np.std(np.log(values), ddof=1)), SPREAD_FLOOR)
        # Prediction of one new session around a median of k: variance s^2 (1 + pi / 2k).
        factor = math.exp(_t995(k - 1) * spread * math.sqrt(1.0 + math.pi / (2.0 * k)))
        return cls(factor, k, True, spread)

    def describe(self) -> str:
        if self.estimated:
            return (
                f"band x{self.factor:.3g} estimated from the spread of {self.sessions} "
                f"baseline sessions (SD {self.spread:.1%} of log time)"
            )
        return (
            f"default band x{self.factor:.3g}: only {self.sessions} baseline session"
            f"{'s' if self.sessions != 1 else ''}, fewer than the {MIN_SESSIONS} needed to "
            "estimate the between-session spread"
        )


def judge(current: float, baseline: list[float], limit: float) -> dict[str, Any]:
    """Verdict of one series: `current` (this session's number) against the per-session
    numbers of the baseline, with the slowdown `limit` (e.g. 1.05)."""
    centre = float(np.exp(np.median(np.log(baseline))))
    band = Band.of(baseline)
    ratio = current / centre
    low, high = ratio / band.factor, ratio * band.factor
    if low > limit:
        verdict = "regression"
    elif high < 1.0 / limit:
        verdict = "improvement"
    elif ratio > limit:
        # Slower than the limit by the estimate, but within what sessions differ by anyway.
        verdict = "inconclusive"
    else:
        verdict = "same"
    return {
        "ratio": ratio,
        "low": low,
        "high": high,
        "band": band.factor,
        "band_estimated": band.estimated,
        "spread": band.spread,
        "sessions": band.sessions,
        "current_s": current,
        "baseline_s": centre,
        "limit": limit,
        "level": LEVEL,
        "verdict": verdict,
    }


# --------------------------------------------------------------------------- finding baselines


_SAVED = re.compile(r"^(\d{4,})_(.+)\.json$")


def _machine_dir(results_dir: Path, machine: str) -> Path:
    return results_dir / machine


def find_sessions(folder: Path, name: str) -> list[Path]:
    """Every saved session of baseline `name` in `folder`, oldest first."""
    hits = [
        (int(m[1]), p)
        for p in folder.glob("*.json")
        if (m := _SAVED.match(p.name)) and m[2] == name
    ]
    return [p for _, p in sorted(hits)]


def find_saved(results_dir: Path, name: str, machine: str) -> Path | None:
    """The newest session saved as `name` for `machine`, if any."""
    found = find_sessions(_machine_dir(results_dir, machine), name)
    return found[-1] if found else None


def _resolve(session: PerfSession) -> list[Path]:
    """The baseline's session files, oldest first (one file when given a path)."""
    cfg = session.perf_config
    ref = cfg.compare
    assert ref is not None
    as_path = Path(ref)
    if not as_path.is_absolute():
        as_path = Path(session.config.invocation_params.dir) / as_path
    if ref.endswith(".json") or as_path.is_file():
        return [as_path]
    machine = machine_fingerprint()["id"]
    found = find_sessions(_machine_dir(cfg.results_dir, machine), ref)
    if found:
        return found[-MAX_SESSIONS:]
    elsewhere = sorted(
        p
        for p in cfg.results_dir.glob(f"*/[0-9][0-9][0-9][0-9]*_{ref}.json")
        if p.parent.name != machine and (m := _SAVED.match(p.name)) and m[2] == ref
    )
    if elsewhere and cfg.allow_cross_machine:
        return find_sessions(elsewhere[-1].parent, ref)[-MAX_SESSIONS:]
    if elsewhere:
        try:
            what = _differences(load_document(elsewhere[-1]).get("machine", {}))
        except SchemaError as exc:
            what = f"and it is unreadable: {exc}"
        raise pytest.UsageError(
            f"--perf-compare={ref}: no baseline {ref!r} for this machine ({machine}); the one "
            f"found was saved on another machine ({elsewhere[-1]}); {what}. "
            "Pass --perf-allow-cross-machine to compare anyway."
        )
    raise pytest.UsageError(
        f"--perf-compare={ref}: no baseline named {ref!r} for this machine ({machine}) under "
        f"{cfg.results_dir}, and no such file. Save one with --perf-save={ref}."
    )


def _differences(other: dict[str, Any]) -> str:
    mine = machine_fingerprint()
    diffs = [
        f"{key}: baseline {other.get(key)!r} vs here {mine.get(key)!r}"
        for key in MACHINE_KEYS
        if other.get(key) != mine.get(key)
    ]
    return "; ".join(diffs) or "machine ids differ"


def _load(path: Path, ref: str) -> dict[str, Any]:
    try:
        doc = load_document(path)
        series(doc)  # every measurement must carry its samples
    except SchemaError as exc:
        raise pytest.UsageError(
            f"--perf-compare={ref}: {exc} The baseline is left as it is; save a new "
            "one with --perf-save=NAME."
        ) from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise pytest.UsageError(
            f"--perf-compare={ref}: {path}: corrupted results file (a measurement "
            f"lacks {exc}). The baseline is left as it is; save a new one with --perf-save=NAME."
        ) from None
    return doc


@dataclass(frozen=True)
class SavedSession:
    """One session of a baseline, reduced to what a comparison needs.

    Reduced at configure time so that the documents (a baseline may hold 20 sessions of a
    large suite) are not kept in memory while the current session measures.
    """

    path: Path
    #: Per-session statistic of each series (`run_statistics`), in seconds.
    values: dict[str, float]
    #: Rounds of each series.
    rounds: dict[str, int]
    commit: dict[str, Any] | None
    #: Memory readings of each memory series (`perfsuite._memory_gate.memory_readings`).
    memory: dict[str, dict[str, Any]] | None = None
    #: Counts of each counted series and the toolchain they depend on (`_count_gate`).
    counts: dict[str, Any] = field(default_factory=dict)
    toolchain: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, path: Path, doc: dict[str, Any], stat: str) -> SavedSession:
        return cls(
            Path(path),
            {sid: value for sid, (_, value) in run_statistics(doc, stat).items()},
            _rounds(doc),
            doc.get("commit"),
            memory_readings(doc),
            _count_gate.count_values(doc),
            _count_gate.toolchain(doc),
        )


def _stat(cfg: Any) -> str:
    return cfg.fail.stat if cfg.fail else "median"


def check_early(session: PerfSession) -> None:
    """Load and vet the baseline's sessions at configure time, before anything is measured."""
    cfg = session.perf_config
    session.baseline_sessions = []
    if cfg.compare is None:
        return
    here = machine_fingerprint()
    kept = []
    for path in _resolve(session):
        doc = _load(path, cfg.compare)
        if doc.get("machine", {}).get("id") != here["id"] and not cfg.allow_cross_machine:
            raise pytest.UsageError(
                f"--perf-compare={cfg.compare}: {path} was recorded on another machine; "
                f"{_differences(doc.get('machine', {}))}. Pass --perf-allow-cross-machine to "
                "compare anyway."
            )
        kept.append(SavedSession.of(path, doc, _stat(cfg)))
    session.baseline_sessions = kept


# --------------------------------------------------------------------------- comparing


def _rounds(doc: dict[str, Any]) -> dict[str, int]:
    return {sid: len(samples) for sid, samples in series(doc).items()}


def apply(session: PerfSession) -> None:
    """Attach a baseline verdict to every series that the baseline's sessions measured too."""
    sessions: list[SavedSession] = session.baseline_sessions
    if not sessions:
        return
    cfg = session.perf_config
    stat = _stat(cfg)
    limit = 1.0 + (cfg.fail.fraction if cfg.fail else 0.05)
    current = run_statistics(session.document, stat)
    rounds = _rounds(session.document)
    newest = set(sessions[-1].rounds)
    measured = set(rounds)
    found: list[dict[str, Any]] = []
    for m in session.document["measurements"]:
        ids = _series_ids(m)
        for sid in ids:
            values = [s.values[sid] for s in sessions if sid in s.values]
            if sid not in current or not values:
                continue
            entry = {
                "name": cfg.compare,
                "series": sid,
                "statistic": stat,
                **judge(current[sid][1], values, limit),
                "rounds": rounds.get(sid, 0),
                "baseline_rounds": int(
                    np.median([s.rounds[sid] for s in sessions if sid in s.rounds])
                ),
            }
            m.setdefault("baselines", []).append(entry)
            if len(ids) == 1:
                m["baseline"] = entry
            found.append(entry)
    counts = {w: 0 for w in ("regression", "inconclusive", "same", "improvement")}
    for e in found:
        counts[e["verdict"]] += 1
    session.document["baseline"] = {
        "name": cfg.compare,
        "path": str(sessions[-1].path),
        "paths": [str(s.path) for s in sessions],
        "sessions": len(sessions),
        "commit": sessions[-1].commit,
        "statistic": stat,
        "limit": limit,
        "level": LEVEL,
        "default_band": DEFAULT_BAND,
        "min_sessions": MIN_SESSIONS,
        "compared": len(found),
        "verdicts": counts,
        "regressions": [e["series"] for e in found if e["verdict"] == "regression"],
        "inconclusive": [e["series"] for e in found if e["verdict"] == "inconclusive"],
        # Series on one side only: nothing to compare, listed so that a rename, a deselected
        # test or a test that stopped measuring is visible. "Missing" is against the newest
        # session: what the baseline measures now.
        "only_in_baseline": sorted(newest - measured),
        "only_in_current": sorted(measured - {sid for s in sessions for sid in s.rounds}),
    }
    _apply_memory(session, sessions)
    session.measurements = session.document["measurements"]
    for e in found:
        if e["verdict"] == "regression" and cfg.fail is not None:
            session.errors.append(_message("REGRESSION", e, cfg))
        if e["verdict"] == "inconclusive" and cfg.fail is not None and cfg.fail_inconclusive:
            session.errors.append(_message("INCONCLUSIVE", e, cfg) + " (--perf-fail-inconclusive)")
    # The exact tier: counts compared as counts (no band, no interval).
    _count_gate.apply(session, sessions)


def _apply_memory(session: PerfSession, sessions: list[SavedSession]) -> None:
    """Memory verdicts (`perfsuite._memory_gate`): exact sources must not grow."""
    cfg = session.perf_config
    fail_memory = getattr(cfg, "fail_memory", None)
    found = apply_memory(
        session.document, [s.memory or {} for s in sessions], fail_memory, cfg.compare
    )
    armed = cfg.fail is not None or fail_memory is not None
    errors, notes = gate_errors(found, armed, armed_inexact=fail_memory is not None)
    session.errors.extend(errors)
    session.document["baseline"]["memory"] = {
        "compared": len(found),
        "fail_memory": fail_memory,
        "regressions": [v["series"] for v in found if v["verdict"] == "regression"],
        "not_judged": [v["series"] for v in found if v["verdict"] == "not judged"],
        "notes": notes,
    }


def _band_of(e: dict[str, Any]) -> Band:
    return Band(e["band"], e["sessions"], e["band_estimated"], e["spread"])


def _message(word: str, e: dict[str, Any], cfg: Any) -> str:
    if cfg.fail is not None:
        rule = f"--perf-fail={cfg.fail} fails when the lower bound > {e['limit']:.3g}x"
    else:
        rule = f"regression when the lower bound > {e['limit']:.3g}x (the default 5% limit)"
    return (
        f"{word} {e['series']}: {e['statistic']} per session {e['ratio']:.3g}x the baseline's "
        f"({fmt_seconds(e['current_s'])} vs {fmt_seconds(e['baseline_s'])}; "
        f"{e['level']:.0%} interval {e['low']:.3g}x..{e['high']:.3g}x from the "
        f"{_band_of(e).describe()}; {e['rounds']} rounds this session, {e['baseline_rounds']} "
        f"per baseline session). Rule: {rule}. " + SEES
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
        how = (
            "band estimated from the sessions"
            if b["sessions"] >= MIN_SESSIONS
            else f"default band x{DEFAULT_BAND:g}: fewer than {MIN_SESSIONS} sessions"
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


def _series_ids(m: dict[str, Any]) -> list[str]:
    if m["kind"] in ("measure", "steps"):
        return [m["id"]]
    if m["kind"] == "compare":
        return [f"{m['test']}::{c['name']}" for c in m["comparison"]["candidates"]]
    return []


# --------------------------------------------------------------------------- saving


def note_outcome(perf_session: PerfSession, session: pytest.Session, exitstatus: int) -> None:
    """Remember why this session must not become a baseline, if it must not.

    Called from `pytest_sessionfinish` before the results are written: an interrupted run,
    one that failed to collect or that stopped early (`-x`, `--maxfail`) measured only part
    of the suite, and a later compare against it would check almost nothing.
    """
    reason = None
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(reporter, "stats", {}) if reporter is not None else {}
    collect_errors = [r for r in stats.get("error", []) if isinstance(r, pytest.CollectReport)]
    if collect_errors:
        n = len(collect_errors)
        reason = f"{n} error{'s' if n != 1 else ''} during collection"
    elif exitstatus == pytest.ExitCode.INTERRUPTED:
        reason = "the session was interrupted"
    elif session.shouldstop or session.shouldfail:
        reason = f"the session stopped early ({session.shouldstop or session.shouldfail})"
    perf_session.incomplete = reason


def save_if_asked(session: PerfSession) -> None:
    cfg = session.perf_config
    session.saved_path = None
    session.save_note = None
    if cfg.save is None or session.document is None:
        return
    machine = session.document["machine"]["id"]
    folder = _machine_dir(cfg.results_dir, machine)
    existing = find_sessions(folder, cfg.save)
    timed = len(series(session.document))
    reason = session.incomplete
    if reason is None and not timed:
        reason = "the session measured nothing (no timed series)"
    if reason is not None:
        if existing:
            kept = (
                f"the existing baseline {cfg.save} ({len(existing)} session"
                f"{'s' if len(existing) != 1 else ''}, newest {existing[-1]}) is untouched"
            )
        else:
            kept = f"there is still no baseline {cfg.save}"
        session.save_note = (
            f"perf: NOT saved as baseline {cfg.save}: {reason}, so it would be a partial "
            f"baseline; {kept}.",
            {"red": True, "bold": True},
        )
        return
    folder.mkdir(parents=True, exist_ok=True)
    numbers = [int(m[1]) for p in folder.glob("*.json") if (m := _SAVED.match(p.name))]
    path = folder / f"{max(numbers, default=0) + 1:04d}_{cfg.save}.json"
    write_json(path, session.document)
    sessions = [*existing, path]
    # Oldest first; a session beyond the cap no longer takes part in any comparison.
    for old in sessions[:-MAX_SESSIONS]:
        old.unlink(missing_ok=True)
    kept = min(len(sessions), MAX_SESSIONS)
    pruned = len(sessions) - kept
    session.saved_path = path
    n = len(session.document["measurements"])
    session.save_note = (
        f"perf: saved baseline {cfg.save}: {path} ({n} measurement{'s' if n != 1 else ''}, "
        f"{timed} timed series); {cfg.save} now holds {kept} session{'s' if kept != 1 else ''}"
        + (f" (deleted {pruned} older beyond {MAX_SESSIONS})" if pruned else "")
        + (
            f"; {MIN_SESSIONS - kept} more for the gate to estimate the between-session spread "
            f"instead of using its default band x{DEFAULT_BAND:g}"
            if kept < MIN_SESSIONS
            else ""
        ),
        {"green": True},
    )
