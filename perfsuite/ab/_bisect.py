"""`perfsuite bisect GOOD BAD` and `perfsuite ab-verdict GOOD`: which commit made it slower.

Each step is one `perfsuite ab` comparison (`run_ab`: paired processes side by side, taking
turns, in their own worktrees, removed on every exit path) of a commit against GOOD, read as
three words: **same** (no regression: the interval's upper bound within the limit),
**slower** (regression: its lower bound beyond it) or **unsure** (neither after `--max-runs`
pairs: `run_ab` already adds pairs up to that bound while undecided). Comparing with GOOD
rather than with the neighbours keeps every step the same question, so that a slowdown
spread over several small commits still shows once their sum passes the limit.

The search is a binary search over the first-parent commits GOOD..BAD, BAD assumed slower
(it is compared only if the search reaches it). A commit whose perf tests cannot be collected
(it fails to install, import or collect: `pytest --co` exits non-zero) is **skipped**, like
`git bisect skip`, and so is an unsure one: the next probe is the untested commit nearest
the middle. When the last good and the first slower commit are neighbours, the slower one is
the culprit and is compared once more, with its parent, for the ratio it brought; when
only skipped or unsure commits lie between them, the culprit is one of those: "not
decidable". A BAD that turns out the same as GOOD ends with "no culprit".

Exit codes of `bisect`: 0 culprit found, 3 not decidable (or no culprit), 2 error.
`ab-verdict GOOD` compares the checked-out commit (HEAD) with GOOD, for `git bisect run`:
0 same (good), 1 slower (bad), 125 skip (cannot be collected, or unsure), and 128 on an error
(any other code from 1 to 127 would read as "bad"; 128 and above stop `git bisect run`).
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import AbError, PerfError
from .._format import fmt_seconds
from ._config import AbConfig
from ._git import git, is_ancestor, resolve_commit, worktrees
from ._judge import EXIT_INCONCLUSIVE, EXIT_OK, EXIT_REGRESSION
from ._loop import Progress, run_ab
from ._run_env import pytest_command, run_env


SAME, SLOWER, UNSURE, SKIP = "same", "slower", "unsure", "skip"

EXIT_FOUND, EXIT_ERROR, EXIT_UNDECIDABLE = 0, 2, 3
#: `ab-verdict` for `git bisect run`: good, bad, skip, and a code that stops the bisection.
VERDICT_GOOD, VERDICT_BAD, VERDICT_SKIP, VERDICT_ABORT = 0, 1, 125, 128


@dataclass
class Step:
    """One commit looked at: its word, and the worst series' ratio against GOOD."""

    commit: str
    word: str
    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    pairs: int = 0
    seconds: float = 0.0
    why: str = ""

    def describe(self) -> str:
        text = f"{self.commit[:10]} {self.word}"
        if self.ratio is not None:
            text += f" {_interval(self.ratio, self.low, self.high)} over {self.pairs} pairs"
        if self.why:
            text += f" ({self.why})"
        return text + f", {self.seconds:.0f} s"


def _interval(ratio: float | None, low: float | None, high: float | None) -> str:
    def f(x: float | None) -> str:
        return "?" if x is None else f"{x:.3f}"

    return f"{f(ratio)}x [{f(low)}, {f(high)}]"


def word_of(doc: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """`run_ab`'s report as one word, and the measurement behind it (the slowest series)."""
    code = doc["exit_code"]
    word = {EXIT_OK: SAME, EXIT_REGRESSION: SLOWER, EXIT_INCONCLUSIVE: UNSURE}.get(code)
    if word is None:
        raise AbError(f"the comparison measured nothing both revisions have (exit {code}).")
    both = [m for m in doc["measurements"] if not m["verdict"].startswith("only in")]
    pick = [m for m in both if m["verdict"] == "regression"] or both
    worst = max(pick, key=lambda m: m["ratio"] or 0.0, default=None)
    return word, worst


def collectable(cfg: AbConfig, commit: str) -> tuple[bool, str]:
    """Whether `commit`'s selected perf tests can be collected (import, install, collect)."""
    repo = Path(git(cfg.repo, "rev-parse", "--show-toplevel"))
    with worktrees(repo, {"PROBE": commit}) as trees:
        tree = trees["PROBE"]
        env = run_env(tree, cfg.repo)
        cmd = pytest_command(cfg, tree / ".perfsuite-probe.json", env) + ["--collect-only"]
        try:
            proc = subprocess.run(
                cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=cfg.run_timeout_s
            )
        except subprocess.TimeoutExpired:
            return False, f"collecting took longer than {cfg.run_timeout_s:g} s"
    if proc.returncode == 0:
        return True, ""
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or ln.startswith("E ")]
    return False, f"pytest --collect-only exited {proc.returncode}: " + (
        (errors or lines or ["no output"])[-1].strip()[:160]
    )


def compare_with(cfg: AbConfig, base: str, commit: str, progress: Progress) -> Step:
    """One step: `commit` against `base` (probed first: an uncollectable commit is a skip)."""
    started = time.perf_counter()
    ok, why = collectable(cfg, commit)
    if not ok:
        return Step(commit, SKIP, why=why, seconds=time.perf_counter() - started)
    doc = run_ab(dataclasses.replace(cfg, base=base, head=commit), progress=progress)
    word, worst = word_of(doc)
    step = Step(commit, word, seconds=time.perf_counter() - started)
    if worst is not None:
        step.ratio, step.low, step.high = worst["ratio"], worst["low"], worst["high"]
        step.pairs = worst["pairs"]
        step.why = worst["series"]
    return step


@dataclass
class Outcome:
    """Where the search ended."""

    good: str
    bad: str
    commits: list[str]
    steps: list[Step] = field(default_factory=list)
    culprit: str | None = None
    parent_step: Step | None = None
    #: Commits the culprit may be when the search could not tell (skipped or unsure ones).
    suspects: list[str] = field(default_factory=list)
    no_culprit: bool = False
    seconds: float = 0.0
    #: Confidence level of every comparison, and the limit of "slower" (e.g. 1.05).
    level: float = 0.99
    limit: float = 1.05

    @property
    def exit_code(self) -> int:
        return EXIT_FOUND if self.culprit is not None else EXIT_UNDECIDABLE

    @property
    def comparisons(self) -> int:
        """Revision comparisons run (skipped commits cost a probe, not a comparison)."""
        return sum(s.word != SKIP for s in self.steps) + (self.parent_step is not None)


def search(
    commits: list[str],
    step: Callable[[str], Step],
    *,
    progress: Progress | None = None,
) -> tuple[int, int, dict[int, Step]]:
    """Binary search for the first slower commit of `commits` (oldest first; the last is BAD).

    Returns `(lo, hi, steps)`: index `lo` is the last commit known the same as GOOD (-1:
    GOOD itself), `hi` the first known slower (`len(commits) - 1` untested: BAD, assumed),
    and every step taken by index. Between them lie only skipped or unsure commits.
    """
    progress = progress or Progress(None)
    steps: dict[int, Step] = {}
    lo, hi = -1, len(commits) - 1
    while True:
        open_ = [i for i in range(lo + 1, hi) if i not in steps]
        if open_:
            mid = (lo + hi) // 2
            # The untested commit nearest the middle (a skipped middle moves the probe).
            i = min(open_, key=lambda j: (abs(j - mid), j))
        elif hi not in steps:
            i = hi  # BAD was only assumed slower: the search needs it now
        else:
            return lo, hi, steps
        s = step(commits[i])
        steps[i] = s
        progress.update(f"perfsuite bisect: {s.describe()}", final=True)
        if s.word == SAME:
            lo = i
        elif s.word == SLOWER:
            hi = i
        if lo == hi or (i == hi and s.word in (SKIP, UNSURE)):
            return lo, hi, steps  # BAD the same as GOOD, or BAD cannot be judged


def bisect(
    cfg: AbConfig,
    good: str,
    bad: str,
    *,
    progress: Progress | None = None,
    step: Callable[[str, str], Step] | None = None,
) -> Outcome:
    """Find the first commit of GOOD..BAD whose perf tests are slower than GOOD's."""
    progress = progress or Progress(None)
    started = time.perf_counter()
    repo = Path(git(cfg.repo, "rev-parse", "--show-toplevel"))
    good_c = resolve_commit(repo, good, "GOOD")
    bad_c = resolve_commit(repo, bad, "BAD")
    if not is_ancestor(repo, good_c, bad_c) or good_c == bad_c:
        raise AbError(f"`GOOD`={good!r} must be an ancestor of `BAD`={bad!r} (and not the same).")
    commits = git(repo, "rev-list", "--first-parent", "--reverse", f"{good_c}..{bad_c}").split()
    if step is None:

        def step(base: str, commit: str) -> Step:
            return compare_with(cfg, base, commit, Progress(None))

    progress.update(
        f"perfsuite bisect: {len(commits)} commits after GOOD {good_c[:10]} up to BAD {bad_c[:10]}",
        final=True,
    )
    lo, hi, steps = search(commits, lambda c: step(good_c, c), progress=progress)
    out = Outcome(good_c, bad_c, commits, [steps[i] for i in sorted(steps)])
    out.level, out.limit = cfg.level, 1.0 + cfg.fail.fraction
    if lo == hi:
        out.no_culprit = True
    elif hi in steps and steps[hi].word != SLOWER:
        out.suspects = [commits[hi]]  # BAD itself could not be judged
    elif lo == hi - 1:
        out.culprit = commits[hi]
        parent = good_c if lo < 0 else commits[lo]
        progress.update(f"perfsuite bisect: culprit {commits[hi][:10]} against its parent ...")
        out.parent_step = step(parent, commits[hi])
    else:
        out.suspects = commits[lo + 1 : hi + 1]
    out.seconds = time.perf_counter() - started
    return out


def render(out: Outcome) -> str:
    lines = [
        f"perfsuite bisect: GOOD {out.good[:10]}, BAD {out.bad[:10]}, {len(out.commits)} commits"
    ]
    lines += [f"  tested {s.describe()}" for s in out.steps]
    if out.culprit is not None:
        p = out.parent_step
        lines.append(f"culprit: {out.culprit}")
        if p is not None:
            lines.append(
                f"  against its parent: {p.word} {_interval(p.ratio, p.low, p.high)} "
                f"over {p.pairs} pairs ({p.why})"
            )
            # How sure: the culprit is slower than GOOD beyond the limit at this level, and
            # its parent (or GOOD itself) was not; the parent comparison says the step is
            # the culprit's own, not the sum of several small ones.
            sure = "sure" if p.word == SLOWER else "less sure: the step from its parent alone"
            lines.append(
                f"  {sure} (each comparison at {out.level:.0%}, slower = beyond "
                f"{out.limit:.3g}x)" + ("" if p.word == SLOWER else f" is {p.word}")
            )
    elif out.no_culprit:
        lines.append("no culprit: BAD is not slower than GOOD (the same within the limit).")
    else:
        lines.append(
            "not decidable: the first slower commit is one of "
            + ", ".join(c[:10] for c in out.suspects)
            + " (skipped or unsure)."
        )
    lines.append(
        f"{len(out.steps)} commits tested ({out.comparisons} revision comparisons, "
        f"{sum(s.word == SKIP for s in out.steps)} skipped) in {fmt_seconds(out.seconds)}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser, *, types: dict[str, Any]) -> None:
    """The comparison options shared by `bisect` and `ab-verdict` (as `perfsuite ab`'s)."""
    parser.add_argument("--fail", type=types["fail"], default=None, metavar="EXPR",
                        help="slower if the commit is slower than GOOD by more than EXPR with "
                        "confidence. Default: '5%%'")  # fmt: skip
    parser.add_argument("--min-runs", type=types["int"], default=8, metavar="N",
                        help="run pairs per comparison before its first verdict. Default: %(default)r")  # fmt: skip
    parser.add_argument("--max-runs", type=types["int"], default=30, metavar="N",
                        help="most run pairs of one comparison; then undecided is unsure. "
                        "Default: %(default)r")  # fmt: skip
    parser.add_argument("--budget", type=types["seconds"], default=900.0, metavar="SECONDS",
                        help="wall-clock budget of one comparison. Default: %(default)r")  # fmt: skip
    parser.add_argument("--level", type=types["level"], default=0.99,
                        help="two-sided confidence level. Default: %(default)r")  # fmt: skip
    parser.add_argument("--test", choices=["signed-rank", "sign"], default="signed-rank",
                        help="paired interval over runs. Default: %(default)r")  # fmt: skip
    parser.add_argument("--repo", type=Path, default=Path.cwd(), metavar="PATH",
                        help="the git repository. Default: the current directory")  # fmt: skip
    parser.add_argument("--sequential", action="store_true",
                        help="run the two runs of a pair one after the other")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def run_bisect(
    args: argparse.Namespace, pytest_args: list[str], emit: Callable[[str], None]
) -> int:
    cfg = AbConfig.from_args(args, pytest_args, base=args.good, head=args.bad)
    out = bisect(cfg, args.good, args.bad, progress=Progress(None if args.quiet else _stderr()))
    emit(render(out))
    return out.exit_code


def run_verdict(
    args: argparse.Namespace, pytest_args: list[str], emit: Callable[[str], None]
) -> int:
    """`ab-verdict GOOD`: the checked-out commit against GOOD, in `git bisect run`'s codes."""
    try:
        cfg = AbConfig.from_args(args, pytest_args, base=args.good, head="HEAD")
        repo = Path(git(cfg.repo, "rev-parse", "--show-toplevel"))
        good = resolve_commit(repo, args.good, "GOOD")
        head = resolve_commit(repo, "HEAD", "HEAD")
        s = compare_with(cfg, good, head, Progress(None if args.quiet else _stderr()))
    except PerfError as exc:  # a bad option as well as a failed comparison stops the bisection
        emit(f"perfsuite ab-verdict: error: {exc}")
        return VERDICT_ABORT
    emit(f"perfsuite ab-verdict: {s.describe()}")
    return {SAME: VERDICT_GOOD, SLOWER: VERDICT_BAD}.get(s.word, VERDICT_SKIP)


def _stderr():
    import sys

    return sys.stderr
