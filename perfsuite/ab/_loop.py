"""The loop of `perfsuite ab`: run pairs until every series is decided or the budget is spent.

Pairs of runs (`perfsuite.ab._runs`) are added in batches (`--jobs`), which side measures
first alternating from pair to pair; after each batch every series is judged
(`perfsuite.ab._judge`), but the loop stops only at planned looks (`_looks`), and the report
document (`AB_SCHEMA`) carries the verdicts, the rule, every run and the exact tiers (memory,
counts) judged once at the end. How and why, in full: `perfsuite.ab`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from .. import _count_gate
from .._errors import AbError
from .._memory_gate import ab_memory
from . import _runs
from ._config import AbConfig
from ._git import git, resolve_commit, worktrees
from ._judge import (
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    EXIT_REGRESSION,
    Series,
    Verdict,
    count_words,
    exit_code,
    judge,
)
from ._runs import RunResult, run_once, run_pair


AB_SCHEMA = "perfsuite.ab"
AB_SCHEMA_VERSION = 1


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
    repo = Path(git(cfg.repo, "rev-parse", "--show-toplevel"))
    revs = {"BASE": resolve_commit(repo, cfg.base, "BASE")}
    if cfg.head is not None:
        revs["HEAD"] = resolve_commit(repo, cfg.head, "HEAD")
    # The working tree as HEAD measures uncommitted changes: say so, since the commit id
    # alone would claim a revision that was not what ran.
    dirty = cfg.head is None and bool(git(repo, "status", "--porcelain", "--untracked-files=no"))
    if dirty:
        progress.update(
            "perfsuite ab: HEAD is the working tree, dirty: uncommitted changes on top of "
            f"{git(repo, 'rev-parse', '--short=10', 'HEAD')} are measured too",
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
            summary = count_words(verdicts)
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
    progress.update(f"perfsuite ab: stopped ({stop_reason}): {count_words(verdicts)}", final=True)
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
            "commit": revs.get("HEAD") or git(repo, "rev-parse", "HEAD"),
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
            _runs.stopping.set()
            raise
        finally:
            pool.shutdown(wait=True)
            _runs.stopping.clear()
