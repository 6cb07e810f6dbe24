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

This module attaches the verdicts (`apply`); the baseline's sessions are loaded and saved by
`perfsuite._baseline_sessions`, and the gate's messages and summary are
`perfsuite._baseline_summary`.
"""

from __future__ import annotations

from typing import Any

from . import _count_gate
from ._baseline_judge import DEFAULT_BAND as DEFAULT_BAND
from ._baseline_judge import DEFAULT_BAND_NORMALISED as DEFAULT_BAND_NORMALISED
from ._baseline_judge import LEVEL as LEVEL
from ._baseline_judge import MIN_CPU_SHARE as MIN_CPU_SHARE
from ._baseline_judge import judge as judge_sessions
from ._baseline_judge import judge_series, limit_of
from ._baseline_sessions import PerfSession as PerfSession
from ._baseline_sessions import SavedSession as SavedSession
from ._baseline_sessions import _rounds, _stat
from ._baseline_sessions import check_early as check_early
from ._baseline_sessions import note_outcome as note_outcome
from ._baseline_sessions import save_if_asked as save_if_asked
from ._baseline_sessions import session_values as session_values
from ._baseline_store import MAX_SESSIONS as MAX_SESSIONS
from ._baseline_summary import SEES as SEES
from ._baseline_summary import Band as Band
from ._baseline_summary import _message
from ._baseline_summary import summary_lines as summary_lines
from ._memory_gate import apply_memory, gate_errors
from ._results import measurement_series
from ._stats import MIN_SESSIONS as MIN_SESSIONS
from ._stats import SPREAD_FLOOR as SPREAD_FLOOR
from ._stats import _t995 as _t995


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


def judge(current: float, baseline: list[float], limit: float) -> dict[str, Any]:
    """Verdict of one series from raw per-session times (`judge_series` without references;
    `perfsuite._profile` judges a test's rounds with it)."""
    return judge_series(current, baseline, limit)


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


def _series_ids(m: dict[str, Any]) -> list[str]:
    return [s.id for s in measurement_series(m) if s.timed]
