"""Scaling laws: `perf.assert_scaling(...)` and `ScalingFit`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._engine import Candidate, Engine
from ._errors import PerfFailure, PerfInconclusive, PerfUsageError
from ._first_call import FirstCallRounds
from ._format import fmt_seconds
from ._stats import law_slope, log_slope, sign_test_interval
from ._values import Law, ScalingMetric, Verdict, words


LAWS = tuple(words(Law))
METRICS = tuple(words(ScalingMetric))


@dataclass(frozen=True)
class ScalingFit:
    """Log-log slope of time against size, with its interval and the law it was checked against.

    Each round times every size back to back and gives one least-squares slope; the
    interval is over rounds, so drift during the run does not bend the fit.
    """

    law: str
    slope: float
    low: float
    high: float
    expected: float
    tolerance: float
    rounds: int
    level: float
    sizes: tuple[float, ...]
    median_s: tuple[float, ...]
    per_unit_s: tuple[float, ...] | None
    unit: str | None
    #: What was timed (`ScalingMetric`): warm calls, or first calls built afresh.
    metric: str = ScalingMetric.STEADY.value

    def table(self) -> str:
        rows = []
        for i, n in enumerate(self.sizes):
            row = f"  n={n:g}: {fmt_seconds(self.median_s[i])}"
            if self.per_unit_s is not None:
                row += f" ({fmt_seconds(self.per_unit_s[i])}/{self.unit or 'unit'})"
            rows.append(row)
        return "\n".join(rows)

    def __str__(self) -> str:
        what = {ScalingMetric.FIRST_CALL: "first-call ", ScalingMetric.COMPILE: "compile-time "}
        what = what.get(self.metric, "")
        return (
            f"{what}slope {self.slope:.3f} ({self.level:.0%} CI {self.low:.3f}..{self.high:.3f} over "
            f"{self.rounds} rounds); `{self.law}` over these sizes has slope {self.expected:.3f} "
            f"+/- {self.tolerance:g}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "law": self.law,
            "slope": self.slope,
            "low": self.low,
            "high": self.high,
            "expected": self.expected,
            "tolerance": self.tolerance,
            "rounds": self.rounds,
            "level": self.level,
            "sizes": list(self.sizes),
            "median_s": list(self.median_s),
            "per_unit_s": None if self.per_unit_s is None else list(self.per_unit_s),
            "unit": self.unit,
            "metric": self.metric,
        }


def _positive(x: Any) -> bool:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and value > 0


def _units(per: Callable[[Any], float] | Mapping[Any, float] | None, sizes: Sequence[Any]):
    if per is None:
        return None
    if isinstance(per, Mapping):
        return [float(per[n]) for n in sizes]
    return [float(per(n)) for n in sizes]


def fit(
    candidates: list[Candidate],
    sizes,
    units,
    *,
    law,
    tolerance,
    level,
    unit,
    metric: str = ScalingMetric.STEADY.value,
) -> ScalingFit:
    xs = units if units is not None else [float(n) for n in sizes]
    rounds = len(candidates[0].samples)
    slopes = [log_slope(xs, [c.samples[r] for c in candidates]) for r in range(rounds)]
    mid, low, high = sign_test_interval(slopes, level=level)
    medians = tuple(float(np.median(c.samples)) for c in candidates)
    per_unit = None if units is None else tuple(m / u for m, u in zip(medians, units))
    return ScalingFit(
        law,
        mid,
        low,
        high,
        law_slope(law, xs),
        tolerance,
        rounds,
        level,
        tuple(float(x) for x in xs),
        medians,
        per_unit,
        unit,
        metric,
    )


def assert_scaling(
    engine: Engine,
    make: Callable[[Any], Callable[[], Any]],
    sizes: Sequence[Any],
    *,
    law: str,
    per,
    unit: str | None,
    tolerance: float,
    instrument: str | None,
    on_result: Callable[[ScalingFit, str], None],
    metric: str = ScalingMetric.STEADY.value,
) -> ScalingFit:
    __tracebackhide__ = True
    if metric not in METRICS:
        raise PerfUsageError(f"`metric` must be one of {list(METRICS)}, got {metric!r}.")
    if law not in LAWS:
        raise PerfUsageError(f"`law` must be one of {list(LAWS)}, got {law!r}.")
    if len(sizes) < 3:
        raise PerfUsageError(f"`sizes` needs at least 3 sizes to fit a slope, got {list(sizes)!r}.")
    if not tolerance > 0:
        raise PerfUsageError(f"`tolerance` must be > 0, got {tolerance!r}.")
    bad = [n for n in sizes if not _positive(n)]
    if per is None and bad:
        # The fit is on log(size): a size <= 0 has no logarithm (the slope would be NaN).
        raise PerfUsageError(
            f"`sizes` must be finite numbers > 0 (the fit is log-log), got {bad!r}."
        )
    units = _units(per, sizes)
    bad_units = [u for u in units or [] if not _positive(u)]
    if bad_units:
        raise PerfUsageError(
            f"`per` must give a finite number > 0 for every size (the fit is log-log), got "
            f"{bad_units!r} for sizes {list(sizes)!r}."
        )
    if len(set(units if units is not None else sizes)) < 2:
        raise PerfUsageError("`sizes` (or `per`) must take at least two distinct values.")
    settings = engine.settings
    with engine.lock():
        if metric in (ScalingMetric.FIRST_CALL, ScalingMetric.COMPILE):
            # Each sample a first call of `make(n)` built afresh (`perfsuite._first_call`);
            # with `compile`, the sample is that call's backend-compile seconds.
            rounds = FirstCallRounds(
                engine, make, list(sizes), instrument, compile_only=metric == ScalingMetric.COMPILE
            )
            cands, extend = rounds.start(), rounds.extend
        else:
            cands = [engine.prepare(f"n={n}", make(n), instrument) for n in sizes]
            engine.run_rounds(cands, settings.min_rounds)
            extend = engine.extend
        while True:
            result = fit(
                cands,
                sizes,
                units,
                law=law,
                tolerance=tolerance,
                level=settings.level,
                unit=unit,
                metric=metric,
            )
            lo, hi = result.expected - tolerance, result.expected + tolerance
            if lo <= result.low and result.high <= hi:
                verdict = Verdict.PASS
            elif result.high < lo or result.low > hi or not math.isfinite(result.slope):
                verdict = Verdict.FAIL
            elif not extend(cands):
                verdict = Verdict.INCONCLUSIVE
            else:
                continue
            break
    on_result(result, verdict)
    if verdict == Verdict.PASS:
        return result
    message = (
        f"`assert_scaling`: {result}; required the interval within the band.\n{result.table()}"
    )
    if verdict == Verdict.INCONCLUSIVE:
        raise PerfInconclusive(
            f"{message}\nINCONCLUSIVE: budget {settings.budget_s:g} s spent before the interval "
            "fitted inside or outside the band."
        )
    raise PerfFailure(message)
