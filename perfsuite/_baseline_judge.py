"""The stored-baseline gate's judge: pure (no pytest, no files), one verdict per series.

Inputs are one number per session and series (`SessionValue`: the `STAT` of the session's
rounds, and the machine-speed reference measured with it, `perfsuite._reference`); output is
a verdict entry per series, the dict the results document stores under `baselines`.

The rule (docs/calibration-baseline.md, run 5):

- **Normalised by the machine.** Whole sessions of identical code differ by up to ~2x on a
  shared VM, and that shift is the machine's: a perfsuite-owned kernel timed between the same
  rounds shifts with the workload (log times correlate at 0.8-0.95 across processes). So the
  number judged is `value / reference` of each session, when both sides have a reference of
  the same kernel; its sessions vary about half as much as the times alone.
- The current session's number is compared with the centre (median) of the baseline's
  sessions: ratio with interval `[ratio / band, ratio * band]` (`perfsuite._stats.
  shift_interval`), the band estimated from the sessions' spread from `MIN_SESSIONS` on,
  otherwise a stated default: `DEFAULT_BAND_NORMALISED` for normalised numbers,
  `DEFAULT_BAND` for raw ones.
- Regression when the lower bound exceeds the limit; improvement when the upper bound is
  below its inverse; inconclusive when the estimate exceeds the limit within the band.
- **What the normalisation cannot see, kept visible.** A change that slows the reference
  too (the interpreter, numpy, the environment, a workload that leaves threads busy between
  rounds) cancels in the normalised ratio. So the raw ratio is judged too, with the raw
  band: a raw regression that the normalised number does not confirm is *inconclusive*
  (`why: "reference"`), never "same", and the entry carries `raw_ratio` and
  `reference_ratio` (the reference's own current/baseline) for the message.
- Without a reference on either side (an older baseline, another kernel), the raw rule
  alone, as before, and the entry says `normalised: false`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._stats import MIN_SESSIONS, Shift, shift_interval
from ._values import FailExpr


#: Default band for raw times with fewer than `MIN_SESSIONS` sessions: about the most that one
#: session of identical code differs from another. On the 2-core CI VM, 100 A/A sessions
#: against 1-session baselines read 0.55x-1.51x and none failed (runs 2 and 4).
DEFAULT_BAND = 1.8
#: Default band for reference-normalised numbers with fewer than `MIN_SESSIONS` sessions. It
#: puts the fail threshold (`limit * band`, 1.43x at a 5% limit) at the geometric middle of
#: unchanged code (1x) and a 2x slowdown, where both are equally far in log from it: on the
#: loaded 2-core VM, normalised A/A sessions read up to 1.3x against a 1-session baseline and
#: 2x sessions no lower than 1.6x (docs/calibration-baseline.md, run 5).
DEFAULT_BAND_NORMALISED = 1.36
#: Two-sided level of the interval.
LEVEL = 0.99


@dataclass(frozen=True)
class SessionValue:
    """One session's number for one series."""

    #: The statistic (`--perf-fail=STAT:...`) of the session's rounds, in seconds.
    value: float
    #: Median machine-speed reference sample of the measurement, seconds (None: not recorded).
    reference: float | None = None
    #: Which reference kernel (`perfsuite._reference.KERNEL`).
    kernel: str | None = None
    #: Rounds behind `value`.
    rounds: int = 0
    #: Share of the time the series' thread computed (`perfsuite._reference`); 0 for a
    #: device-timed series; None: not recorded (taken as CPU-bound).
    cpu_share: float | None = None


def _as_value(x: SessionValue | float) -> SessionValue:
    # By kind of value, not by class: pytester's in-process runs may import this module
    # afresh, and a `SessionValue` of the other copy is still one.
    if isinstance(x, (int, float, np.floating)):
        return SessionValue(float(x))
    return x


def _verdict(shift: Shift, limit: float) -> str:
    if shift.low > limit:
        return "regression"
    if shift.high < 1.0 / limit:
        return "improvement"
    if shift.ratio > limit:
        # Slower than the limit by the estimate, but within what sessions differ by anyway.
        return "inconclusive"
    return "same"


#: Least CPU share (of both sides) for which a series is normalised: below it, most of its
#: time is not the host CPU's work (sleep, I/O, a device), does not follow the reference, and
#: normalising would add the reference's noise instead of removing the machine's.
MIN_CPU_SHARE = 0.5


def _exponent(current: SessionValue, baseline: Sequence[SessionValue]) -> float | None:
    """How much of the reference to take out: `value / reference ** exponent`, where the
    exponent is the series' CPU share (the part of its time that follows the machine's speed),
    the smaller of this session's and the baseline's median; None: raw times only."""
    if current.reference is None or not all(
        b.reference is not None and b.kernel == current.kernel for b in baseline
    ):
        return None
    shares = [1.0 if b.cpu_share is None else b.cpu_share for b in baseline]
    mine = 1.0 if current.cpu_share is None else current.cpu_share
    share = min(mine, float(np.median(shares)))
    return share if share >= MIN_CPU_SHARE else None


def judge_series(
    current: SessionValue | float, baseline: Sequence[SessionValue | float], limit: float
) -> dict[str, Any]:
    """Verdict of one series: this session's number against the baseline's sessions, with
    the slowdown `limit` (e.g. 1.05). Plain floats are raw times without a reference."""
    cur, base = _as_value(current), [_as_value(b) for b in baseline]
    raw = shift_interval(cur.value, [b.value for b in base], default_band=DEFAULT_BAND)
    raw_verdict = _verdict(raw, limit)
    out: dict[str, Any] = {
        "raw_ratio": raw.ratio,
        "raw_low": raw.low,
        "raw_high": raw.high,
        "raw_band": raw.band.factor,
        "raw_verdict": raw_verdict,
        "current_s": cur.value,
        "baseline_s": raw.centre,
        "limit": limit,
        "level": LEVEL,
        "why": None,
    }
    exponent = _exponent(cur, base)
    if exponent is not None:
        assert cur.reference is not None
        refs = [b.reference for b in base]
        shift = shift_interval(
            cur.value / cur.reference**exponent,
            [b.value / r**exponent for b, r in zip(base, refs) if r is not None],
            default_band=DEFAULT_BAND_NORMALISED,
        )
        verdict = _verdict(shift, limit)
        if raw_verdict == "regression" and verdict in ("same", "improvement"):
            # The machine-speed reference slowed as much as the workload: a machine that got
            # slower, or a change that slows the reference too (interpreter, environment).
            verdict, out["why"] = "inconclusive", "reference"
        ref_centre = float(np.exp(np.median(np.log(refs))))
        out |= {
            "normalised": True,
            "exponent": exponent,
            "reference_ratio": cur.reference / ref_centre,
            "current_reference_s": cur.reference,
            "baseline_reference_s": ref_centre,
        }
    else:
        shift, verdict = raw, raw_verdict
        out |= {"normalised": False, "exponent": None, "reference_ratio": None}
    return {
        "ratio": shift.ratio,
        "low": shift.low,
        "high": shift.high,
        "band": shift.band.factor,
        "band_estimated": shift.band.estimated,
        "spread": shift.band.spread,
        "sessions": shift.band.sessions,
        "verdict": verdict,
        **out,
    }


def limit_of(fail: FailExpr | None) -> float:
    """The slowdown a series may show: `--perf-fail`'s, or the default 5%."""
    return 1.0 + (fail.fraction if fail is not None else 0.05)


def judge(
    baseline: Sequence[Mapping[str, SessionValue]],
    current: Mapping[str, SessionValue],
    fail: FailExpr | None,
) -> dict[str, dict[str, Any]]:
    """Verdicts of every series of `current` that at least one baseline session measured:
    `{series id: entry}` in the order of `current`. `baseline`: one mapping per session,
    oldest first, of that session's numbers (of the statistic `fail.stat`)."""
    limit = limit_of(fail)
    out: dict[str, dict[str, Any]] = {}
    for sid, value in current.items():
        values = [s[sid] for s in baseline if sid in s]
        if not values:
            continue
        entry = judge_series(value, values, limit)
        entry["rounds"] = value.rounds
        entry["baseline_rounds"] = int(np.median([v.rounds for v in values]))
        out[sid] = entry
    return out


__all__ = [
    "DEFAULT_BAND",
    "DEFAULT_BAND_NORMALISED",
    "LEVEL",
    "MIN_CPU_SHARE",
    "MIN_SESSIONS",
    "SessionValue",
    "judge",
    "judge_series",
    "limit_of",
]
