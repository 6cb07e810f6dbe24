"""`perfsuite ab`'s verdict on one series: the paired interval of HEAD/BASE against the limit.

The paired log-ratios `log(HEAD_i / BASE_i)` of the run pairs get a confidence interval for
their centre (`perfsuite._stats.paired_interval`: Wilcoxon signed-rank by default, or the
sign test); **regression** when its lower bound exceeds the `--fail` limit, **no regression**
when its upper bound is within it, otherwise **inconclusive** (never a pass). Pure: numbers
in, a `Verdict` out; the loop that adds pairs until every verdict is decided is
`perfsuite.ab._loop`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._format import fmt_seconds
from .._stats import paired_interval


if TYPE_CHECKING:
    from ._config import AbConfig


EXIT_OK, EXIT_REGRESSION, EXIT_ERROR, EXIT_INCONCLUSIVE = 0, 1, 2, 3


@dataclass
class Series:
    """The per-run numbers of one series id on both sides."""

    sid: str
    stat: str = ""
    base: list[float | None] = field(default_factory=list)
    head: list[float | None] = field(default_factory=list)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        both = [(b, h) for b, h in zip(self.base, self.head) if b is not None and h is not None]
        if not both:
            return np.zeros(0), np.zeros(0)
        b, h = np.asarray(both, dtype=float).T
        return b, h


@dataclass
class Verdict:
    sid: str
    stat: str
    verdict: str
    ratio: float
    low: float
    high: float
    pairs: int
    base_s: float
    head_s: float
    limit: float
    level: float
    test: str

    @property
    def decided(self) -> bool:
        return self.verdict != "inconclusive"

    def as_dict(self) -> dict[str, Any]:
        return {
            "series": self.sid,
            "statistic": self.stat,
            "verdict": self.verdict,
            "ratio": _finite(self.ratio),
            "low": _finite(self.low),
            "high": _finite(self.high),
            "pairs": self.pairs,
            "base_s": _finite(self.base_s),
            "head_s": _finite(self.head_s),
            "limit": self.limit,
            "level": self.level,
            "test": self.test,
        }

    def describe(self) -> str:
        if math.isfinite(self.low):
            ci = f"{self.level:.0%} CI {self.low:.3f}x..{self.high:.3f}x"
        else:
            ci = f"too few pairs for a {self.level:.0%} interval"
        return (
            f"{self.verdict.upper()} {self.sid}: HEAD/BASE {self.ratio:.3f}x ({ci}; "
            f"{self.pairs} run pairs, {self.stat} per run {fmt_seconds(self.base_s)} -> "
            f"{fmt_seconds(self.head_s)}); rule: regression if the lower bound > {self.limit:.3g}x, "
            f"no regression if the upper bound <= {self.limit:.3g}x."
        )


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def judge(series: Series, cfg: AbConfig) -> Verdict:
    b, h = series.pairs()
    limit = 1.0 + cfg.fail.fraction
    if b.size == 0:
        # Measured by one revision only (a new or removed test): nothing to compare.
        side = "HEAD" if any(x is not None for x in series.head) else "BASE"
        return Verdict(
            series.sid,
            series.stat,
            f"only in {side}",
            math.nan,
            -math.inf,
            math.inf,
            0,
            math.nan,
            math.nan,
            limit,
            cfg.level,
            cfg.test,
        )
    logs = np.log(h) - np.log(b)
    mid, low, high = paired_interval(logs, level=cfg.level, test=cfg.test)
    # An unbounded side stays infinite (not exp(-inf) = 0): "no claim yet", not "0x".
    ratio = math.exp(mid)
    rlow = math.exp(low) if math.isfinite(low) else -math.inf
    rhigh = math.exp(high) if math.isfinite(high) else math.inf
    if rlow > limit:
        verdict = "regression"
    elif rhigh <= limit:
        verdict = "no regression"
    else:
        verdict = "inconclusive"
    return Verdict(
        series.sid,
        series.stat,
        verdict,
        ratio,
        rlow,
        rhigh,
        int(b.size),
        float(np.median(b)),
        float(np.median(h)),
        limit,
        cfg.level,
        cfg.test,
    )


def count_words(verdicts: list[Verdict]) -> str:
    """`2 regression, 1 no regression`: how many series got each verdict, in order."""
    words = [v.verdict for v in verdicts]
    return ", ".join(f"{words.count(w)} {w}" for w in dict.fromkeys(words)) or "nothing measured"


def exit_code(verdicts: list[Verdict]) -> int:
    words = {v.verdict for v in verdicts if not v.verdict.startswith("only in")}
    if not words:
        return EXIT_ERROR  # nothing was measured by both revisions
    if "regression" in words:
        return EXIT_REGRESSION
    if "inconclusive" in words:
        return EXIT_INCONCLUSIVE
    return EXIT_OK
