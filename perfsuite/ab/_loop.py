"""`perfsuite ab BASE [HEAD]`: two revisions measured side by side in paired processes.

Why processes: on a shared machine a process of identical code can run several percent
faster or slower than the next one for its whole life (on the 2-core CI VM, two processes of
one pure-Python loop, pinned to the same CPU and measured in alternating rounds, differed by
up to 7%), so the unit of replication is the process and every verdict averages over many.
Each run is one `pytest --perf --perf-json=...` in the revision's worktree; every series it
measured is reduced to one robust number per run (the median of its per-round samples).

Why side by side: the machine's speed also drifts over seconds and differs between CPUs.
The two runs of a pair, `(BASE_i, HEAD_i)`, therefore start together and take strict turns
(`perfsuite._turns`): one timed round of BASE, one of HEAD, ..., each while the other waits,
both pinned to the same CPU (rotating over the allowed CPUs from pair to pair; `--no-pin`
leaves placement to the OS). Which side measures first alternates from pair to pair.
`--jobs N` runs N pairs at once, each pinned to its own CPU from its start: a pair's two sides
still share one CPU, so what the other pairs do to the machine hits both sides alike, and on
the 2-core CI VM two at once ran 1.27 pairs per second where one at a time ran 0.92
(calibration runs 7 and 5 of docs/calibration-ab.md, the same workload).

The paired log-ratios `log(HEAD_i / BASE_i)` get a confidence interval for their centre:
by default the Wilcoxon signed-rank (Hodges-Lehmann) interval, which assumes only that the
differences are symmetric about their centre, true for A/A by exchangeability and a good
approximation under a shift, and needs fewer pairs than the sign test for the same width
(asymptotic efficiency 0.95 vs 0.64 under normal noise); `--test sign` uses the
distribution-free sign-test interval instead. A measurement is a **regression** when the
interval's lower bound exceeds the `--fail` limit, **no regression** when its upper bound is
within it; otherwise more pairs run until `--max-runs` or `--budget`, and the verdict is
**inconclusive**, which is never reported as a pass.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from . import _ab_runs, _count_gate
from ._ab_config import AbConfig as AbConfig
from ._ab_report import render_markdown, render_text, write_json_report  # noqa: F401
from ._ab_runs import (  # noqa: F401  (re-exported)
    AbError,
    RunResult,
    _git,
    resolve_commit,
    run_once,
    run_pair,
    run_statistics,
    worktrees,
)
from ._format import fmt_seconds
from ._memory_gate import ab_memory
from ._stats import TESTS, paired_interval, signed_rank_interval  # noqa: F401  (re-exported)


EXIT_OK, EXIT_REGRESSION, EXIT_ERROR, EXIT_INCONCLUSIVE = 0, 1, 2, 3

AB_SCHEMA = "perfsuite.ab"
AB_SCHEMA_VERSION = 1


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


# --------------------------------------------------------------------------- the loop


class Progress:
    """One status line per run pair (rewritten in place on a terminal)."""

    def __init__(self, stream: TextIO | None):
        self.stream = stream
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())

    def update(self, text: str, *, final: bool = False) -> None:
        if self.stream is None:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _looks(cfg: AbConfig) -> set[int]:
    """Pair counts at which the data is looked at: min_runs, then growing by about 1/4.

    Fewer looks mean fewer chances of an early wrong decision (every look is a test).
    """
    out, n = set(), cfg.min_runs
    while n < cfg.max_runs:
        out.add(n)
        n += max(1, n // 4)
    out.add(cfg.max_runs)
    return out


def run_ab(
    cfg: AbConfig,
    *,
    progress: Progress | None = None,
    runner: Callable[[AbConfig, str, int, Path, Path], RunResult] | None = None,
) -> dict[str, Any]:
    """Run the paired comparison and return the report document (see `AB_SCHEMA`).

    Pairs run side by side (`run_pair`); a `runner` (tests) runs the two sides one after the
    other instead.
    """
    progress = progress or Progress(None)
    if runner is None and cfg.sequential:
        runner = run_once
    repo = Path(_git(cfg.repo, "rev-parse", "--show-toplevel"))
    revs = {"BASE": resolve_commit(repo, cfg.base, "BASE")}
    if cfg.head is not None:
        revs["HEAD"] = resolve_commit(repo, cfg.head, "HEAD")
    # The working tree as HEAD measures uncommitted changes: say so, since the commit id
    # alone would claim a revision that was not what ran.
    dirty = cfg.head is None and bool(_git(repo, "status", "--porcelain", "--untracked-files=no"))
    if dirty:
        progress.update(
            "perfsuite ab: HEAD is the working tree, dirty: uncommitted changes on top of "
            f"{_git(repo, 'rev-parse', '--short=10', 'HEAD')} are measured too",
            final=True,
        )
    started = time.perf_counter()
    series: dict[str, Series] = {}
    warnings: list[str] = []
    run_log: list[dict[str, Any]] = []
    verdicts: list[Verdict] = []
    # Memory readings per side and series: judged once at the end (exact sources agree in
    # every run, so more pairs add nothing to them).
    memory: dict[str, dict[str, list[dict[str, Any]]]] = {"BASE": {}, "HEAD": {}}
    stop_reason = "max-runs"
    looks = _looks(cfg)
    count_runs: dict[str, list[dict[str, Any]]] = {"BASE": [], "HEAD": []}
    toolchains: dict[str, dict[str, Any]] = {"BASE": {}, "HEAD": {}}
    with worktrees(repo, revs) as trees, tempfile.TemporaryDirectory() as out:
        if cfg.head is None:
            trees["HEAD"] = repo  # the working tree as it is, uncommitted changes included
        batch_s = 0.0
        jobs = 1 if (runner is not None or cfg.sequential) else max(1, cfg.jobs)
        i = 0
        while i < cfg.max_runs:
            elapsed = time.perf_counter() - started
            if i >= cfg.min_runs and elapsed + batch_s > cfg.budget_s:
                stop_reason = "budget"
                break
            batch = range(i, min(i + jobs, cfg.max_runs))
            t0 = time.perf_counter()
            progress.update(f"perfsuite ab: pair {batch[-1] + 1}/{cfg.max_runs}: running ...")
            done = _run_batch(cfg, batch, trees, Path(out), runner)
            for j, order, pair in done:
                for side, res in zip(order, pair):
                    run_log.append(
                        {"side": side, "pair": j, "seconds": res.seconds,
                         "returncode": res.returncode}
                    )  # fmt: skip
                    if res.returncode == 1:
                        warnings.append(f"{side} run {j + 1}: some tests failed (pytest exit 1).")
                    for sid, reading in getattr(res, "memory", {}).items():
                        memory[side].setdefault(sid, []).append(reading)
                    # The exact tier: every run's counts, judged after the loop.
                    count_runs[side].append(res.counts)
                    toolchains[side] = res.toolchain
                    for sid, (stat, value) in res.stats.items():
                        s = series.setdefault(sid, Series(sid, stat))
                        for lst in (s.base, s.head):
                            lst.extend([None] * (j - len(lst)))
                        (s.base if side == "BASE" else s.head).append(value)
                for s in series.values():
                    for lst in (s.base, s.head):
                        lst.extend([None] * (j + 1 - len(lst)))
            batch_s = max(batch_s, time.perf_counter() - t0)
            i = batch[-1] + 1
            if not series:
                raise AbError(
                    "the first runs measured nothing: select perf tests (marked "
                    "@pytest.mark.perf that use the `perf` fixture) in the pytest arguments."
                )
            verdicts = [judge(s, cfg) for s in series.values()]
            summary = _count(verdicts)
            progress.update(
                f"perfsuite ab: pair {i}/{cfg.max_runs} done "
                f"({time.perf_counter() - started:.0f} s): {summary}"
            )
            looked = any(n + 1 in looks for n in batch)
            if looked and i >= cfg.min_runs and all(v.decided for v in verdicts):
                stop_reason = "decided"
                break
        if all(v.verdict.startswith("only in") for v in verdicts):
            raise AbError(
                "BASE and HEAD measured no series in common, so nothing can be compared: "
                + "; ".join(f"{v.sid} {v.verdict}" for v in verdicts)
            )
    counts = _count_gate.ab_verdicts(
        count_runs["BASE"], count_runs["HEAD"], base_toolchain=toolchains["BASE"],
        head_toolchain=toolchains["HEAD"], strict=cfg.fail_counts_toolchain,
    )  # fmt: skip
    for e in counts["entries"]:
        progress.update(f"perfsuite ab: {_count_gate.message(e)}", final=True)
    progress.update(f"perfsuite ab: stopped ({stop_reason}): {_count(verdicts)}", final=True)
    memory_verdicts = ab_memory(memory["BASE"], memory["HEAD"], cfg.fail_memory)
    code = exit_code(verdicts)
    if code in (EXIT_OK, EXIT_INCONCLUSIVE) and any(
        v["verdict"] == "regression" for v in memory_verdicts
    ):
        code = EXIT_REGRESSION
    return {
        "schema": AB_SCHEMA,
        "schema_version": AB_SCHEMA_VERSION,
        "base": {"rev": cfg.base, "commit": revs["BASE"]},
        "head": {
            "rev": cfg.head or "(working tree)",
            "commit": revs.get("HEAD") or _git(repo, "rev-parse", "HEAD"),
            "dirty": dirty,
        },
        "pytest_args": list(cfg.pytest_args),
        "rule": {
            "fail": str(cfg.fail) if cfg.stat else f"{cfg.fail.fraction * 100:g}%",
            "limit": 1.0 + cfg.fail.fraction,
            "level": cfg.level,
            "test": cfg.test,
            "min_runs": cfg.min_runs,
            "max_runs": cfg.max_runs,
            "budget_s": cfg.budget_s,
            "pinned": cfg.pin and not cfg.sequential,
            "side_by_side": not cfg.sequential,
            "jobs": jobs,  # pairs at once, as run
        },
        "stopped": stop_reason,
        "seconds": time.perf_counter() - started,
        "runs": run_log,
        "warnings": sorted(set(warnings)),
        "measurements": [
            {**v.as_dict(), "base_runs_s": s.base, "head_runs_s": s.head}
            for v, s in zip(verdicts, series.values())
        ],
        "memory": memory_verdicts,
        "counts": counts,
        "exit_code": EXIT_REGRESSION if counts["failed"] else code,
    }


def _run_batch(
    cfg: AbConfig,
    batch: range,
    trees: dict[str, Path],
    out: Path,
    runner: Callable[[AbConfig, str, int, Path, Path], RunResult] | None,
) -> list[tuple[int, tuple[str, str], list[RunResult]]]:
    """Run the pairs of `batch` (at once when there are several) and return them in order.

    Which side measures first alternates from pair to pair.
    """
    orders = {j: ("BASE", "HEAD") if j % 2 == 0 else ("HEAD", "BASE") for j in batch}
    if runner is not None:
        return [
            (j, orders[j], [runner(cfg, side, j, trees[side], out) for side in orders[j]])
            for j in batch
        ]
    if len(batch) == 1:
        j = batch[0]
        return [(j, orders[j], run_pair(cfg, j, orders[j], trees, out))]
    with ThreadPoolExecutor(max_workers=len(batch)) as pool:
        futures = {j: pool.submit(run_pair, cfg, j, orders[j], trees, out) for j in batch}
        try:
            return [(j, orders[j], futures[j].result()) for j in batch]
        except BaseException:
            # Leaving the `with` waits for every thread: tell the other pairs to stop now.
            _ab_runs.stopping.set()
            raise
        finally:
            pool.shutdown(wait=True)
            _ab_runs.stopping.clear()


def _count(verdicts: list[Verdict]) -> str:
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
