"""Issue 16: `perfsuite bisect` (the search, and end to end) and `ab-verdict` under `git bisect run`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _ab_repo import git

from perfsuite._values import FailExpr
from perfsuite.ab import AbConfig, _bisect
from perfsuite.ab._bisect import SAME, SKIP, SLOWER, UNSURE, Step
from perfsuite.cli import main


# --------------------------------------------------------------------------- the search


def _fake(words: dict[int, str], default_slow_from: int):
    """A step over commits "c0".."cN": `words` by index, else same before the slowdown."""
    asked: list[int] = []

    def step(commit: str) -> Step:
        i = int(commit[1:])
        asked.append(i)
        word = words.get(i, SLOWER if i >= default_slow_from else SAME)
        return Step(commit, word)

    return step, asked


@pytest.mark.parametrize("first_slow", range(11))
def test_search_finds_every_position_in_few_steps(first_slow: int) -> None:
    commits = [f"c{i}" for i in range(11)]
    step, asked = _fake({}, first_slow)
    lo, hi, steps = _bisect.search(commits, step)
    assert hi == first_slow
    assert lo == first_slow - 1
    # ceil(log2(10)) = 4 probes of the 10 commits before BAD, plus BAD itself when the
    # search ends next to it (BAD is only assumed slower until then).
    assert len(asked) <= (4 if first_slow < 10 else 5)


def test_search_skips_an_uncollectable_middle() -> None:
    commits = [f"c{i}" for i in range(11)]
    step, asked = _fake({4: SKIP}, 5)
    lo, hi, steps = _bisect.search(commits, step)
    assert (lo, hi) == (3, 5)  # c4 skipped: the culprit lies in c4..c5
    assert asked[0] == 4  # the middle was asked first and skipped
    assert steps[4].word == SKIP


def test_search_with_no_regression_tests_bad_and_ends_same() -> None:
    commits = [f"c{i}" for i in range(11)]
    step, asked = _fake({}, 99)
    lo, hi, steps = _bisect.search(commits, step)
    assert lo == hi == 10
    assert 10 in asked


def test_unsure_commits_make_the_culprit_undecidable(tmp_path) -> None:
    commits = [f"c{i}" for i in range(5)]
    step, _ = _fake({2: UNSURE}, 2)
    lo, hi, _ = _bisect.search(commits, step)
    assert (lo, hi) == (1, 3)  # c2 unsure, c3 slower: c2 or c3


def test_bisect_outcomes_and_exit_codes(tmp_path) -> None:
    from _ab_repo import make_repo

    repo = make_repo(tmp_path)  # two commits; GOOD = HEAD~1, BAD = HEAD
    cfg = AbConfig("x", None, (), FailExpr("median", 0.05), repo=repo)

    def slower(base: str, commit: str) -> Step:
        return Step(commit, SLOWER, 2.0, 1.8, 2.2, 8)

    out = _bisect.bisect(cfg, "HEAD~1", "HEAD", step=slower)
    assert out.culprit == git(repo, "rev-parse", "HEAD")
    assert out.exit_code == 0
    assert out.comparisons == 2  # BAD against GOOD, then against its parent (GOOD)
    text = _bisect.render(out)
    assert "against its parent: slower 2.000x [1.800, 2.200] over 8 pairs" in text
    assert "sure (each comparison at 99%, slower = beyond 1.05x)" in text
    out = _bisect.bisect(cfg, "HEAD~1", "HEAD", step=lambda b, c: Step(c, SAME))
    assert out.no_culprit
    assert out.exit_code == 3
    assert "no culprit" in _bisect.render(out)
    with pytest.raises(_bisect.AbError, match="`GOOD`='HEAD' must be an ancestor of `BAD`"):
        _bisect.bisect(cfg, "HEAD", "HEAD~1", step=slower)


# --------------------------------------------------------------------------- end to end

WORKLOAD = "def work():\n    return sum(range({n}))\n# commit {i}\n"
BROKEN = "def work(:\n    return 0\n# commit {i}: does not import\n"
TEST = """
import pytest

from workload import work


@pytest.mark.perf
def test_sum(perf):
    perf.measure(work, name="sum")
"""


def make_history(
    tmp_path: Path, *, slow_from: int | None, broken: int | None, count: int = 12
) -> Path:
    """`count` commits (1..count): work doubles from `slow_from` on; `broken` does not import."""
    repo = tmp_path / "history"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@perfsuite.invalid")
    git(repo, "config", "user.name", "t")
    (repo / "test_sum.py").write_text(TEST)
    for i in range(1, count + 1):
        n = 400 if slow_from is not None and i >= slow_from else 200
        text = (BROKEN if i == broken else WORKLOAD).format(n=n, i=i)
        (repo / "workload.py").write_text(text)
        git(repo, "add", ".")
        git(repo, "commit", "-qm", f"commit {i}")
    return repo


# Small comparisons that a 2x slowdown still decides: 6 pairs at 90% (the signed-rank
# interval is finite from 5 pairs at 90%), limit 30% (A/A pairs of this loop read within
# ~10% on the 2-core VM, 2x reads ~2x: neither is near 1.3x).
FAST = ["--min-runs", "6", "--max-runs", "10", "--level", "0.9", "--fail", "30%", "--quiet"]


@pytest.mark.slow
def test_bisect_finds_commit_7_past_an_unimportable_commit_4(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    repo = make_history(tmp_path, slow_from=7, broken=4)
    commits = git(repo, "rev-list", "--reverse", "HEAD").split()
    started = time.perf_counter()
    code = main(
        ["bisect", commits[0], commits[-1], "--repo", str(repo), *FAST, "--", "--perf-quick"]
    )
    seconds = time.perf_counter() - started
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"culprit: {commits[6]}" in out  # commit 7
    comparisons = int(out.split(" revision comparisons")[0].rsplit("(", 1)[1])
    assert comparisons <= 5, out
    assert "against its parent: slower" in out
    assert seconds < 600
    assert git(repo, "worktree", "list").count("\n") == 0  # every worktree removed


@pytest.mark.slow
def test_bisect_of_a_history_without_regression_ends_no_culprit(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    # Three commits: the one between, then BAD, both found the same as GOOD.
    repo = make_history(tmp_path, slow_from=None, broken=None, count=3)
    commits = git(repo, "rev-list", "--reverse", "HEAD").split()
    code = main(
        ["bisect", commits[0], commits[-1], "--repo", str(repo), *FAST, "--", "--perf-quick"]
    )
    out = capsys.readouterr().out
    assert code == 3, out
    assert "no culprit" in out
    assert git(repo, "worktree", "list").count("\n") == 0


def test_collectable_probe_tells_a_broken_commit(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    repo = make_history(tmp_path, slow_from=None, broken=4)
    commits = git(repo, "rev-list", "--reverse", "HEAD").split()
    cfg = AbConfig("x", None, (), FailExpr("median", 0.05), repo=repo)
    ok, why = _bisect.collectable(cfg, commits[3])
    assert not ok
    assert "SyntaxError" in why or "exited 2" in why, why
    assert _bisect.collectable(cfg, commits[4]) == (True, "")
    assert git(repo, "worktree", "list").count("\n") == 0


@pytest.mark.slow
def test_ab_verdict_exit_codes_under_git_bisect_run(tmp_path) -> None:
    """Real `git bisect run` over 7 commits: commit 3 does not import (skipped if asked, 125),
    commit 5 is the first bad one (1), the others before it good (0)."""
    repo = make_history(tmp_path, slow_from=5, broken=3, count=7)
    commits = git(repo, "rev-list", "--reverse", "HEAD").split()
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "src"), env.get("PYTHONPATH", "")])
    git(repo, "bisect", "start", commits[-1], commits[0])
    # `ab-verdict` compares HEAD (what bisect checked out) with GOOD, in worktrees of their own.
    cmd = [
        sys.executable,
        "-m",
        "perfsuite.cli",
        "ab-verdict",
        commits[0],
        *FAST,
        "--",
        "--perf-quick",
    ]
    proc = subprocess.run(
        ["git", "bisect", "run", *cmd], cwd=repo, env=env, capture_output=True, text=True
    )
    log = git(repo, "bisect", "log")
    git(repo, "bisect", "reset")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{commits[4]} is the first bad commit" in proc.stdout, proc.stdout
    assert git(repo, "worktree", "list").count("\n") == 0
    # Which verdicts were given: "bad" at or after 5, "good" before, 3 skipped if asked.
    for line in log.splitlines():
        parts = line.replace("'", "").split()
        if line.startswith("git bisect ") and parts[2] in ("good", "bad", "skip"):
            word, commit = parts[2], parts[3]
            i = commits.index(commit) + 1
            assert word == {True: "bad", False: "good"}[i >= 5] or (word == "skip" and i == 3), line
    # Commit 4 can only have been called good by `ab-verdict` (not by `bisect start`).
    assert f"git bisect good {commits[3]}" in log.replace("'", ""), log


def test_ab_verdict_codes_for_skip_and_error(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    repo = make_history(tmp_path, slow_from=None, broken=4)
    commits = git(repo, "rev-list", "--reverse", "HEAD").split()
    git(repo, "checkout", "-q", commits[3])  # the commit that does not import
    assert main(["ab-verdict", commits[0], "--repo", str(repo), "--quiet"]) == 125
    assert "skip (pytest --collect-only exited" in capsys.readouterr().out
    # An error must stop `git bisect run` (codes 1..127 but 125 would read as "bad").
    assert main(["ab-verdict", "no-such-rev", "--repo", str(repo), "--quiet"]) == 128
    assert "`GOOD`='no-such-rev' is not a commit" in capsys.readouterr().out


@pytest.mark.slow
def test_ab_profile_diffs_head_against_base_for_the_regressed_series(
    tmp_path, capsys, monkeypatch
) -> None:
    """`perfsuite ab --profile` (issue 16): HEAD's extra call of a slow helper is named first."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@perfsuite.invalid")
    git(repo, "config", "user.name", "t")
    # A Python loop, so that its time is the helper's own (self) time.
    body = (
        "def helper():\n    t = 0\n    for i in range(3000):\n        t += i\n    return t\n"
        "\n\ndef work():\n    return {call}\n"
    )
    (repo / "test_sum.py").write_text(TEST)
    (repo / "workload.py").write_text(body.format(call="sum(range(100))"))
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    (repo / "workload.py").write_text(body.format(call="sum(range(100)) + helper()"))
    git(repo, "commit", "-qam", "head")
    code = main(
        ["ab", "HEAD~1", "HEAD", "--repo", str(repo), "--profile", *FAST, "--", "--perf-quick"]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    lines = out.splitlines()
    i = next(k for k, ln in enumerate(lines) if "top of the host diff" in ln)
    assert "helper (workload.py:1) [only in HEAD]" in lines[i + 1], out
    folder = repo / ".perf" / "profiles" / "ab" / "test_sum.py_test_sum_sum"
    assert (folder / "diff-HEAD-vs-BASE.host.txt").is_file()
    assert (folder / "base.pstats").is_file()
    assert (folder / "head.pstats").is_file()
    assert git(repo, "worktree", "list").count("\n") == 0


def test_ab_verdict_usage_error_stops_git_bisect(capsys) -> None:
    assert main(["ab-verdict", "HEAD", "--min-runs", "zero"]) == 128
    assert "--min-runs" in capsys.readouterr().err
