"""Stored baselines: `--perf-save`, `--perf-compare`, `--perf-fail`.

The unit of replication is the session. Whole processes of identical code differ: on the
2-core CI VM the median time of one loop moved by 0.55x-1.5x from one pytest process to the
next, now and then 2.7x (docs/calibration-baseline.md), while the rounds inside one process
vary by 1-3%. A verdict built from rounds of one process on each side cried wolf in 9 of 12
A/A sessions. That shift is the machine's (CPU frequency, other tenants, the hypervisor), not
the process's: kernels of unrelated code timed in one process shift together (log times
correlate at 0.8-0.95 across processes), and fixing hash seeds and address layout changes
nothing (docs/calibration-baseline.md, run 5). So:

- A baseline NAME holds one results file per saved session (`perfsuite._baseline_store`:
  `.perf/<machine-id>/NNNN_<NAME>.json`); `--perf-save=NAME` again adds a session, and only
  the newest `MAX_SESSIONS` are kept.
- Each series is reduced to one number per session: the `STAT` of `--perf-fail=STAT:PCT`
  (`min`, `median`, `mean`) over the session's rounds, median by default, exactly as
  `perfsuite ab` reduces a run (`run_statistics`), together with the machine-speed reference
  timed between the same test's rounds (`perfsuite._reference`) and the test's CPU share.
- The pure judge (`perfsuite._baseline_judge`) divides a CPU-bound series' number by the
  reference (to the power of its CPU share), compares it with the centre (median) of the
  baseline's sessions, with the interval `[ratio / band, ratio * band]`
  (`perfsuite._stats.shift_interval`): `band` is what the between-session spread allows at
  99%, estimated from `MIN_SESSIONS` sessions on, otherwise a stated default
  (`DEFAULT_BAND_NORMALISED` x1.36 for normalised numbers, `DEFAULT_BAND` x1.8 for raw ones).
  Series mostly off the CPU (sleeping, waiting on I/O or a device) and baselines without a
  reference are judged on raw times.
- Only a slowdown whose *lower* bound exceeds the `--perf-fail` limit is a regression. A
  point estimate beyond the limit whose interval reaches below it is inconclusive, reported
  at the end of the run and in the JSON (a failure with `--perf-fail-inconclusive`). A raw
  regression that the reference explains (the reference slowed as much) is inconclusive too.

What the gate can see: a whole-session shift of the workload beyond the band, 2x on the CI VM.
What it cannot see: effects smaller than the band (`perfsuite ab` pairs processes side by side
for those), and in the normalised verdict a change that slows the reference as much as the
workload (interpreter, numpy, environment, the machine itself): that one shows in the raw
ratio and the reference's ratio, which every verdict carries and the message prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from . import _baseline_store, _count_gate, _stats
from ._baseline_judge import (
    DEFAULT_BAND,
    DEFAULT_BAND_NORMALISED,
    LEVEL,
    MIN_CPU_SHARE,
    SessionValue,
    judge_series,
    limit_of,
)
from ._baseline_judge import judge as judge_sessions
from ._baseline_store import MAX_SESSIONS, BaselineStore, machine_differences
from ._errors import PerfUsageError
from ._format import fmt_seconds
from ._memory_gate import apply_memory, gate_errors, memory_readings
from ._reference import reference_seconds
from ._results import (
    SchemaError,
    iter_series,
    load_document,
    machine_fingerprint,
    measurement_series,
    run_statistics,
    series,
)
from ._stats import MIN_SESSIONS, SPREAD_FLOOR
from ._stats import _t995 as _t995


class PerfSession(Protocol):
    """What the gate reads and writes of the session (`perfsuite._session.PerfSession`, which
    imports this module, not the other way round)."""

    config: pytest.Config
    perf_config: Any
    document: dict[str, Any] | None
    measurements: list[dict[str, Any]]
    errors: list[str]
    baseline_sessions: list[Any]
    baselines: BaselineStore | None
    incomplete: str | None
    saved_path: Path | None
    save_note: str | None


#: Re-exported for the gate's readers: the rule lives in `perfsuite._baseline_judge`, the
#: interval in `perfsuite._stats`, the files in `perfsuite._baseline_store`.
__all__ = [
    "DEFAULT_BAND",
    "DEFAULT_BAND_NORMALISED",
    "LEVEL",
    "MAX_SESSIONS",
    "MIN_CPU_SHARE",
    "MIN_SESSIONS",
    "SPREAD_FLOOR",
    "Band",
    "SavedSession",
    "judge",
]

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


def judge(current: float, baseline: list[float], limit: float) -> dict[str, Any]:
    """Verdict of one series from raw per-session times (`judge_series` without references;
    `perfsuite._profile` judges a test's rounds with it)."""
    return judge_series(current, baseline, limit)


# --------------------------------------------------------------------------- finding baselines


def _store(session: PerfSession) -> BaselineStore:
    if session.baselines is None:
        session.baselines = BaselineStore(
            session.perf_config.results_dir, machine_fingerprint()["id"]
        )
    return session.baselines


def _resolve(session: PerfSession) -> list[Path]:
    """The baseline's session files, oldest first (one file when given a path)."""
    cfg = session.perf_config
    assert cfg.compare is not None
    try:
        return _store(session).resolve(
            cfg.compare,
            cwd=Path(session.config.invocation_params.dir),
            allow_cross_machine=cfg.allow_cross_machine,
            differences=_differences,
        )
    except PerfUsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def _differences(other: dict[str, Any]) -> str:
    return machine_differences(other, machine_fingerprint())


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
    #: What the judge reads of each series: the statistic with its machine-speed reference.
    numbers: dict[str, SessionValue] = field(default_factory=dict)

    @classmethod
    def of(cls, path: Path, doc: dict[str, Any], stat: str) -> SavedSession:
        numbers = session_values(doc, stat)
        return cls(
            Path(path),
            {sid: v.value for sid, v in numbers.items()},
            _rounds(doc),
            doc.get("commit"),
            memory_readings(doc),
            _count_gate.count_values(doc),
            _count_gate.toolchain(doc),
            numbers,
        )

    def number(self, sid: str) -> SessionValue:
        """The judge's input for `sid` (a raw time where built without `numbers`)."""
        found = self.numbers.get(sid)
        return found or SessionValue(self.values[sid], rounds=self.rounds.get(sid, 0))


def session_values(doc: dict[str, Any], stat: str) -> dict[str, SessionValue]:
    """One session's numbers, by series id: the statistic of its rounds (`run_statistics`,
    as `perfsuite ab` reduces a run) and the reference measured with it."""
    stats = run_statistics(doc, stat)
    out = {}
    for s in iter_series(doc):
        if s.id in stats:
            out[s.id] = SessionValue(
                stats[s.id][1],
                reference_seconds(s.reference),
                s.reference_kernel,
                len(s.samples),
                s.cpu_share if _host_timed(s.entry) else 0.0,
            )
    return out


def _host_timed(entry: dict[str, Any]) -> bool:
    """Whether a series' time is the host CPU's work by its instrument: the host clock, or
    JAX on its CPU backend. A device's time (CUDA) does not follow the host's speed, even
    where the host spins while it waits (its CPU share then reads ~1)."""
    inst = entry.get("instrument")
    name = inst.get("name") if isinstance(inst, dict) else inst
    if name in (None, "host"):
        return True
    return name == "jax" and isinstance(inst, dict) and inst.get("backend") == "cpu"


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
    limit = limit_of(cfg.fail)
    rounds = _rounds(session.document)
    newest = set(sessions[-1].rounds)
    measured = set(rounds)
    judged = judge_sessions(
        [{sid: s.number(sid) for sid in s.values} for s in sessions],
        session_values(session.document, stat),
        cfg.fail,
    )
    found: list[dict[str, Any]] = []
    for m in session.document["measurements"]:
        ids = _series_ids(m)
        for sid in ids:
            if sid not in judged:
                continue
            entry = {"name": cfg.compare, "series": sid, "statistic": stat, **judged[sid]}
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
        "default_band_normalised": DEFAULT_BAND_NORMALISED,
        "min_sessions": MIN_SESSIONS,
        "normalised": sum(bool(e.get("normalised")) for e in found),
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


def _series_ids(m: dict[str, Any]) -> list[str]:
    return [s.id for s in measurement_series(m) if s.timed]


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
    store = _store(session)
    existing = store.sessions(cfg.save)
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
    saved = store.save(cfg.save, session.document)
    path, kept, pruned = saved.path, saved.kept, saved.pruned
    session.saved_path = path
    n = len(session.document["measurements"])
    session.save_note = (
        f"perf: saved baseline {cfg.save}: {path} ({n} measurement{'s' if n != 1 else ''}, "
        f"{timed} timed series); {cfg.save} now holds {kept} session{'s' if kept != 1 else ''}"
        + (f" (deleted {pruned} older beyond {_baseline_store.MAX_SESSIONS})" if pruned else "")
        + (
            f"; {MIN_SESSIONS - kept} more for the gate to estimate the between-session spread "
            f"instead of using its default band (x{DEFAULT_BAND_NORMALISED:g} relative to the "
            f"machine-speed reference, x{DEFAULT_BAND:g} for raw times)"
            if kept < MIN_SESSIONS
            else ""
        ),
        {"green": True},
    )
