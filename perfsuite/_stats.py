"""Robust statistics for paired, interleaved timings.

Everything here works on *log* ratios of paired rounds: round `r` times every candidate
back to back, so slow drift of the machine (thermal, a neighbour's job) cancels within the
pair. The interval is the distribution-free sign-test interval for the median of the paired
log-ratios: it assumes nothing about the noise (which on shared machines is skewed and
heavy-tailed) beyond independence of rounds, and one interrupted round cannot move it much.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ._errors import PerfUsageError
from ._values import PairedTest, words


#: Paired tests `paired_interval` knows (`perfsuite ab --test`).
TESTS = tuple(words(PairedTest))

#: The fewest paired rounds for which a sign-test interval at the default level exists.
MIN_ROUNDS_FOR_LEVEL = 8


def sign_test_interval(values: Sequence[float], *, level: float) -> tuple[float, float, float]:
    """Median of `values` with a distribution-free two-sided confidence interval.

    Returns `(median, low, high)`. With too few values for `level`, the interval is
    `(-inf, inf)`: no claim can be made yet.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = x.size
    if n == 0:
        return math.nan, -math.inf, math.inf
    median = float(np.median(x))
    alpha = 1.0 - level
    # k: the largest count whose lower tail P(Bin(n, 1/2) <= k) is within alpha/2; the
    # interval is then [x_(k+1), x_(n-k)] (1-based order statistics).
    k = _largest_half_binomial_tail(n, alpha / 2.0)
    if k < 0:
        return median, -math.inf, math.inf
    return median, float(x[k]), float(x[n - k - 1])


def _largest_half_binomial_tail(n: int, tail: float) -> int:
    """Largest `k` with `P(Bin(n, 1/2) <= k) <= tail`, or -1 when even `k = 0` exceeds it.

    Exact, in integers (scipy would do, but importing scipy.stats costs ~0.7 s at the start
    of every `--perf` process, and `perfsuite ab` starts many).
    """
    total, cum, term, k = 1 << n, 0, 1, -1
    for i in range(n + 1):
        cum += term  # term = C(n, i)
        if cum > tail * total:
            break
        k = i
        term = term * (n - i) // (i + 1)
    return k


def normal_quantile(p: float) -> float:
    """Quantile of the standard normal distribution."""
    return NormalDist().inv_cdf(p)


@dataclass(frozen=True)
class Summary:
    """Per-candidate summary of seconds-per-call samples (one sample per round)."""

    median: float
    min: float
    mean: float
    iqr: float
    rounds: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        x = np.asarray(samples, dtype=float)
        if x.size == 0:
            return cls(math.nan, math.nan, math.nan, math.nan, 0)
        q1, q3 = np.percentile(x, [25, 75])
        return cls(float(np.median(x)), float(x.min()), float(x.mean()), float(q3 - q1), x.size)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "median": self.median,
            "min": self.min,
            "mean": self.mean,
            "iqr": self.iqr,
            "rounds": self.rounds,
        }


def log_slope(sizes: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of `log(values)` against `log(sizes)`."""
    lx = np.log(np.asarray(sizes, dtype=float))
    ly = np.log(np.asarray(values, dtype=float))
    lx = lx - lx.mean()
    return float((lx * (ly - ly.mean())).sum() / (lx * lx).sum())


def law_slope(law: str, sizes: Sequence[float]) -> float:
    """The log-log slope that `law` has over exactly these sizes.

    `nlogn` is not a power law: over small sizes its local slope is well above 1, so the
    expected slope is computed over the sizes actually measured rather than assumed.
    """
    n = np.asarray(sizes, dtype=float)
    laws = {
        "constant": np.ones_like(n),
        "linear": n,
        "nlogn": n * np.log(n),
        "quadratic": n * n,
    }
    if law not in laws:
        raise PerfUsageError(f"`law` must be one of {sorted(laws)}, got {law!r}.")
    if law == "constant":
        return 0.0
    return log_slope(n, laws[law])


def wilson_interval(successes: int, trials: int, *, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (used by the calibration scripts)."""
    if trials == 0:
        return 0.0, 1.0
    z = normal_quantile(0.5 + level / 2.0)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _signed_rank_cdf(n: int) -> np.ndarray:
    """`P(W+ <= w)` for w = 0..n(n+1)/2 under the null (exact, by dynamic programming)."""
    total = n * (n + 1) // 2
    dist = np.zeros(total + 1)
    dist[0] = 1.0
    for rank in range(1, n + 1):
        shifted = np.zeros_like(dist)
        shifted[rank:] = dist[:-rank]
        dist = (dist + shifted) / 2.0  # each rank is in W+ with probability 1/2
    return np.cumsum(dist)


def signed_rank_interval(values: Sequence[float], *, level: float) -> tuple[float, float, float]:
    """Hodges-Lehmann estimate of the centre of `values` with the signed-rank interval.

    Returns `(estimate, low, high)`: the median of the Walsh averages `(x_i + x_j) / 2`,
    `i <= j`, and the order statistics `k` and `M + 1 - k` of them, where `k` is the largest
    count with `P(W+ <= k - 1) <= (1 - level) / 2`. Exact for any `n`; with too few values
    for `level` the interval is `(-inf, inf)`.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = x.size
    if n == 0:
        return math.nan, -math.inf, math.inf
    i, j = np.triu_indices(n)
    walsh = np.sort((x[i] + x[j]) / 2.0)
    estimate = float(np.median(walsh))
    cdf = _signed_rank_cdf(n)
    k = int(np.searchsorted(cdf, (1.0 - level) / 2.0 * (1 + 1e-12), side="right"))
    if k == 0:
        return estimate, -math.inf, math.inf
    return estimate, float(walsh[k - 1]), float(walsh[walsh.size - k])


def paired_interval(logs: Sequence[float], *, level: float, test: str) -> tuple[float, ...]:
    """Centre of the paired log-ratios with its interval, by `test` (see module docstring)."""
    if test == "signed-rank":
        return signed_rank_interval(logs, level=level)
    if test == "sign":
        return sign_test_interval(logs, level=level)
    raise PerfUsageError(f"`test` must be one of {list(TESTS)}, got {test!r}.")


# --------------------------------------------------------------------------- between sessions
#
# The stored-baseline gate's interval (`perfsuite._baseline_judge`): one number per session
# on each side, the current session against the spread of the baseline's sessions.

#: Fewest baseline sessions from which the between-session spread is estimated.
MIN_SESSIONS = 5
#: Smallest between-session spread (SD of log values) an estimate may claim: a handful of
#: quiet sessions does not prove that the next one will be as quiet. On the CI VM five
#: sessions saved back to back varied by 3%, sessions minutes apart by 10-20%.
SPREAD_FLOOR = 0.06
# Student t quantiles at 0.995 by degrees of freedom (scipy.stats.t.ppf; scipy.stats costs
# ~0.7 s to import at the start of every --perf process). Beyond 30, the normal's 2.576.
_T995 = {
    4: 4.6041, 5: 4.0321, 6: 3.7074, 7: 3.4995, 8: 3.3554, 9: 3.2498, 10: 3.1693,
    11: 3.1058, 12: 3.0545, 13: 3.0123, 14: 2.9768, 15: 2.9467, 16: 2.9208, 17: 2.8982,
    18: 2.8784, 19: 2.8609, 20: 2.8453, 25: 2.7874, 30: 2.75,
}  # fmt: skip


def _t995(df: int) -> float:
    if df > 30:
        return 2.5758
    return _T995[max(k for k in _T995 if k <= df)]  # rounding df down: conservative


@dataclass(frozen=True)
class Band:
    """How far one session may differ from the baseline's centre by noise alone (at 99%)."""

    #: Multiplicative half-width: the interval of a ratio `r` is `[r / factor, r * factor]`.
    factor: float
    #: Baseline sessions behind it.
    sessions: int
    #: True when estimated from the sessions, False for the stated default band.
    estimated: bool
    #: SD of the log per-session numbers (after the floor), when estimated.
    spread: float | None

    @classmethod
    def of(cls, values: Sequence[float], default: float) -> Band:
        """The band of `values` (one per session): estimated from `MIN_SESSIONS` on,
        otherwise `default`."""
        k = len(values)
        if k < MIN_SESSIONS:
            return cls(default, k, False, None)
        # SD rather than a MAD: an unusual baseline session widens the band (the gate sees
        # less) instead of being discarded (which would understate process noise and fail
        # unchanged code). The centre is the median, so that session does not move it.
        spread = max(float(np.std(np.log(values), ddof=1)), SPREAD_FLOOR)
        # Prediction of one new session around a median of k: variance s^2 (1 + pi / 2k).
        factor = math.exp(_t995(k - 1) * spread * math.sqrt(1.0 + math.pi / (2.0 * k)))
        return cls(factor, k, True, spread)


@dataclass(frozen=True)
class Shift:
    """One session's number against the sessions of a baseline (`shift_interval`)."""

    #: current / centre (the median of the baseline's sessions, geometric).
    ratio: float
    low: float
    high: float
    centre: float
    band: Band


def shift_interval(current: float, baseline: Sequence[float], *, default_band: float) -> Shift:
    """The ratio of `current` to the centre of `baseline` (one number per session), with the
    99% interval `[ratio / band, ratio * band]` of what the between-session spread allows."""
    if not baseline:
        raise PerfUsageError("`baseline` must hold at least one session's number, got none.")
    if not (current > 0 and all(v > 0 for v in baseline)):
        raise PerfUsageError(
            f"`current` and `baseline` must be > 0, got {current!r}, {baseline!r}."
        )
    centre = float(np.exp(np.median(np.log(baseline))))
    band = Band.of(baseline, default_band)
    ratio = current / centre
    return Shift(ratio, ratio / band.factor, ratio * band.factor, centre, band)
