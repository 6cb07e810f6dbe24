"""A stored baseline's sessions, for the gate: found and reduced at configure, saved at the end.

`check_early` resolves `--perf-compare=NAME` to its session files (`perfsuite._baseline_store`),
refuses another machine's unless allowed, and reduces each file to a `SavedSession` (one
number per series, `session_values`) before anything is measured, so that the documents are
not kept in memory. `save_if_asked` adds this session to `--perf-save=NAME`, unless it is
partial (`note_outcome`: interrupted, collection errors, stopped early) or measured nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from . import _baseline_store, _count_gate
from ._baseline_judge import DEFAULT_BAND, DEFAULT_BAND_NORMALISED, SessionValue
from ._baseline_store import BaselineStore, machine_differences
from ._errors import PerfUsageError
from ._memory_gate import memory_readings
from ._reference import reference_seconds
from ._results import (
    SchemaError,
    iter_series,
    load_document,
    machine_fingerprint,
    run_statistics,
    series,
)
from ._stats import MIN_SESSIONS


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


def _rounds(doc: dict[str, Any]) -> dict[str, int]:
    return {sid: len(samples) for sid, samples in series(doc).items()}


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
