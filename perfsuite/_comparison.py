"""Side-by-side comparisons: `perf.compare(...)`, `Ratio`, `assert_speedup`, `assert_no_slower`."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._engine import Candidate, Engine
from ._errors import PerfFailure, PerfInconclusive, PerfUsageError
from ._format import fmt_seconds
from ._memory import MemoryStats, check_growth
from ._settings import Settings, check_statistic
from ._stats import sign_test_interval
from ._values import Verdict


@dataclass(frozen=True)
class Ratio:
    """How many times faster `a` is than `b` (`t_b / t_a`), with its confidence interval.

    With `statistic="mean"` (the default) the estimate is the ratio of the two mean costs per
    call over all rounds (what a user pays), and the interval is the sign-test interval of the
    paired per-round log-ratios of round means, widened where needed to contain the estimate:
    the interval resists the machine's noise (one preempted round moves it little), and the
    verdict can never contradict the ratio of the total times measured. With
    `statistic="median"` both come from per-round medians of chunks (the typical call).
    """

    a: str
    b: str
    estimate: float
    low: float
    high: float
    rounds: int
    level: float
    a_per_call_s: float
    b_per_call_s: float
    statistic: str = "mean"
    #: The sign-test interval of the per-round ratios alone (before it was extended to reach
    #: the ratio of mean costs), to show which of the two kept a claim undecided.
    round_low: float | None = None
    round_high: float | None = None

    def __str__(self) -> str:
        return (
            f"{self.a} is {self.estimate:.3g}x as fast as {self.b} "
            f"({self.level:.0%} CI {self.low:.3g}x..{self.high:.3g}x over {self.rounds} rounds; "
            f"{self.statistic} per call {fmt_seconds(self.a_per_call_s)} vs "
            f"{fmt_seconds(self.b_per_call_s)})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "rounds": self.rounds,
            "level": self.level,
            "statistic": self.statistic,
            "a_per_call_s": self.a_per_call_s,
            "b_per_call_s": self.b_per_call_s,
            "round_low": self.round_low,
            "round_high": self.round_high,
        }


class Comparison:
    """Named callables measured interleaved, round by round. Made by `perf.compare`."""

    def __init__(self, engine: Engine, candidates: list[Candidate], on_verdict: Callable):
        self._engine = engine
        self._candidates = {c.name: c for c in candidates}
        self._on_verdict = on_verdict
        #: Called at every look that leaves the claim undecided, `(comparison, ratio)`: the
        #: plugin's progress lines (`perfsuite._progress`); nothing by default.
        self.on_progress: Callable[[Comparison, Ratio], None] = lambda cmp, r: None

    @property
    def candidates(self) -> dict[str, Candidate]:
        return dict(self._candidates)

    @property
    def spent_s(self) -> float:
        """Seconds of timed rounds so far (what the budget is counted against)."""
        return self._engine.spent_s

    @property
    def rounds(self) -> int:
        return len(next(iter(self._candidates.values())).samples)

    def _get(self, name: str, arg: str) -> Candidate:
        if name not in self._candidates:
            raise PerfUsageError(
                f"`{arg}`={name!r} is not a candidate of this comparison; "
                f"candidates: {sorted(self._candidates)}."
            )
        return self._candidates[name]

    def ratio(self, a: str, *, over: str) -> Ratio:
        """Speedup of `a` over `over` (>1 means `a` is faster) from the rounds so far."""
        ca, cb = self._get(a, "a"), self._get(over, "over")
        logs = np.log(np.asarray(cb.samples)) - np.log(np.asarray(ca.samples))
        level = self._engine.settings.level
        mid, low, high = sign_test_interval(logs, level=level)
        statistic = ca.statistic
        round_low, round_high = math.exp(low), math.exp(high)
        if statistic == "mean" and logs.size:
            # The ratio of mean costs, i.e. of the total times (every round runs the same
            # calls). The sign-test interval is about the typical *round*; a slow call that
            # comes rarer than once a round moves the total but not the median round, so
            # the interval is widened to reach the total: never a verdict it contradicts.
            mid = math.log(cb.per_call_s / ca.per_call_s)
            low, high = min(low, mid), max(high, mid)
        return Ratio(
            a,
            over,
            math.exp(mid),
            math.exp(low),
            math.exp(high),
            len(logs),
            level,
            ca.per_call_s,
            cb.per_call_s,
            statistic,
            round_low,
            round_high,
        )

    def _decide(self, a: str, b: str, decide: Callable[[Ratio], bool | None]):
        """Add rounds until `decide` returns True/False or the budget is spent (None)."""
        cands = list(self._candidates.values())
        with self._engine.lock():
            while True:
                r = self.ratio(a, over=b)
                verdict = decide(r)
                if verdict is not None:
                    return r, verdict
                self.on_progress(self, r)
                if not self._engine.extend(cands):
                    return r, None

    def _budget_note(self) -> str:
        s = self._engine.settings
        return f"budget {s.budget_s:g} s spent ({self._engine.spent_s:.2f} s of rounds)"

    def assert_speedup(self, a: str, *, over: str, at_least: float) -> Ratio:
        """Pass only if the lower confidence bound of `a`'s speedup over `over` is >= `at_least`.

        Fails with the numbers when the upper bound is below `at_least`; otherwise adds rounds
        until decided, and fails as inconclusive if the budget runs out first.
        """
        __tracebackhide__ = True
        if not at_least > 0:
            raise PerfUsageError(f"`at_least` must be > 0, got {at_least!r}.")
        rule = f"required speedup >= {at_least:g}x (lower {{level}} bound)"

        def decide(r: Ratio) -> bool | None:
            if r.low >= at_least:
                return True
            if r.high < at_least:
                return False
            return None

        r, verdict = self._decide(a, over, decide)
        rule = rule.format(level=f"{r.level:.0%}")
        return self._conclude("assert_speedup", r, verdict, rule, threshold=at_least)

    def assert_no_slower(self, a: str, *, than: str, tolerance: float = 0.05) -> Ratio:
        """Pass only if `a` is, with confidence, at most `tolerance` slower than `than`.

        The slowdown `t_a / t_than` must have its upper confidence bound <= 1 + tolerance;
        a lower bound above it is a failure; anything between means more rounds, then
        inconclusive.
        """
        __tracebackhide__ = True
        if not 0 <= tolerance < 10:
            raise PerfUsageError(f"`tolerance` must be a fraction in [0, 10), got {tolerance!r}.")
        limit = 1.0 + tolerance

        def decide(r: Ratio) -> bool | None:
            # r is the speedup t_than / t_a; the slowdown is its inverse. Too few rounds for
            # the level give the interval (0, inf): no claim either way yet.
            if r.low > 0 and 1.0 / r.low <= limit:
                return True
            if math.isfinite(r.high) and 1.0 / r.high > limit:
                return False
            return None

        r, verdict = self._decide(a, than, decide)
        rule = f"required slowdown <= {limit:g}x, i.e. speedup >= {1 / limit:.4g}x (lower {r.level:.0%} bound)"
        return self._conclude("assert_no_slower", r, verdict, rule, threshold=1 / limit)

    def memory(self, name: str) -> MemoryStats | None:
        """Memory one call of candidate `name` needs (None where no source exists here)."""
        return self._get(name, "name").memory

    def assert_memory_no_more(self, a: str, *, than: str, tolerance: float = 0.0) -> dict:
        """Pass only if `a`'s peak memory is at most `than`'s, grown by at most `tolerance`
        (a fraction); inexact sources (host RSS) get at least their calibrated tolerance.
        Returns the verdict (numbers and rule), fails with it."""
        __tracebackhide__ = True
        return assert_memory_no_more(
            a,
            self._get(a, "a").memory,
            than,
            self._get(than, "than").memory,
            tolerance,
            self._on_verdict,
        )

    # ----------------------------------------------------------------------- counts

    def counts(self, name: str):
        """The exact counts of one call of candidate `name` (`perfsuite._counts.Counts`)."""
        cand = self._get(name, "name")
        if cand.counts is None:
            raise PerfUsageError(
                f"candidate {name!r} was not counted: counts are off in these settings "
                "(`Settings.counts`)."
            )
        return cand.counts

    def assert_counts_no_more(self, a: str, *, than: str, keys=None):
        """Pass only if every deterministic counter of `a` is <= `than`'s (exact, no noise).

        `keys`: the counters to check (default: every counter both measured). A counter
        that is non-deterministic on either side cannot be checked and fails when named in
        `keys` (it is skipped, and said so, otherwise).
        """
        __tracebackhide__ = True
        from ._counts import compare_counts

        return compare_counts(self.counts(a), self.counts(than), a=a, b=than, keys=keys)

    def _conclude(self, kind: str, r: Ratio, verdict: bool | None, rule: str, *, threshold: float):
        __tracebackhide__ = True
        word = {True: Verdict.PASS, False: Verdict.FAIL, None: Verdict.INCONCLUSIVE}[verdict]
        # The hook may answer with lines for the end of the message (the profiles' diff).
        note = self._on_verdict(
            {
                "assertion": kind,
                "verdict": word,
                "threshold": threshold,
                "rule": rule,
                "ratio": r.as_dict(),
            }
        )
        if verdict is True:
            return r
        message = f"`{kind}`: {r}; {rule}."
        tail = f"\n{note}" if isinstance(note, str) and note else ""
        if verdict is None:
            raise PerfInconclusive(
                f"{message} INCONCLUSIVE: the interval still straddles the threshold after "
                f"{r.rounds} rounds and the {self._budget_note()}. Raise the budget "
                "(`--perf-budget` or `@pytest.mark.perf(budget=...)`) or reduce noise." + tail
            )
        raise PerfFailure(message + tail)


def assert_memory_no_more(a, ma, b, mb, tolerance, on_verdict) -> dict:
    """`cmp.assert_memory_no_more`: `check_growth` of `a` against `b` as a test verdict."""
    __tracebackhide__ = True
    if not 0 <= tolerance < 10:
        raise PerfUsageError(f"`tolerance` must be a fraction in [0, 10), got {tolerance!r}.")
    if ma is None or mb is None:
        raise PerfUsageError(
            f"`assert_memory_no_more({a!r}, than={b!r})`: no memory source on this machine "
            "for these candidates (no CUDA, JAX device stats, /proc/self/clear_refs or psutil)."
        )
    v = check_growth(f"{a} vs {b}", ma, mb, tolerance)
    on_verdict(
        {
            "assertion": "assert_memory_no_more",
            "verdict": {"pass": Verdict.PASS, "regression": Verdict.FAIL}.get(
                v["verdict"], Verdict.INCONCLUSIVE
            ),
            "rule": v["rule"],
            "memory": v,
            # The table's verdict rows read a ratio: here, of the peaks (a over b).
            "ratio": {
                "a": a,
                "b": b,
                "estimate": (ma.peak_bytes / mb.peak_bytes) if mb.peak_bytes > 0 else None,
                "low": None,
                "high": None,
                "rounds": 1,
            },
        }
    )
    if v["verdict"] == "pass":
        return v
    message = (
        f"`assert_memory_no_more`: {a} peak {ma.peak_bytes} bytes ({ma}) vs {b} peak "
        f"{mb.peak_bytes} bytes ({mb}); {v['rule']}"
    )
    if v["verdict"] == "regression":
        raise PerfFailure(message + ".")
    raise PerfInconclusive(message + ": not comparable.")


def compare(
    *,
    settings: Settings | None = None,
    instrument: str | None = None,
    statistic: str | None = None,
    device_lock: Callable[[], Any] = contextlib.nullcontext,
    before_round: Callable[[], None] = lambda: None,
    on_verdict: Callable[[dict[str, Any]], None] = lambda verdict: None,
    **fns: Callable[[], Any],
) -> Comparison:
    """Time the named callables interleaved (first call, warm-up, `min_rounds` rounds).

    The engine behind `perf.compare`, usable outside pytest (asv `track_` benchmarks,
    calibration scripts): `compare(fast=f, ref=g).ratio("fast", over="ref")`.
    `statistic` overrides `settings.statistic` (`"mean"` cost per call, or `"median"`).
    """
    if len(fns) < 2:
        raise PerfUsageError(f"`compare` needs at least two named callables, got {sorted(fns)}.")
    settings = settings or Settings()
    if statistic is not None:
        settings = dataclasses.replace(settings, statistic=check_statistic(statistic))
    engine = Engine(settings, device_lock, before_round)
    with engine.lock():
        cands = [engine.prepare(name, fn, instrument) for name, fn in fns.items()]
        engine.run_rounds(cands, engine.settings.min_rounds)
    return Comparison(engine, cands, on_verdict)
