"""The `perfsuite` command under stress: a dirty HEAD, a closed pipe, SIGTERM/SIGHUP, orphans."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _ab_repo import PERF_TEST, make_repo
from _ab_repo import git as _git

import perfsuite
from perfsuite import ab
from perfsuite._options import FailExpr
from perfsuite.ab import _loop, _runs


#: The perfsuite being tested, first on the import path of every subprocess.
ROOT = Path(perfsuite.__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


# --------------------------------------------------------------------------- a dirty HEAD


def _runner(cfg, side, index, tree, out):
    return ab.RunResult(side, index, 0.01, 0, {"t.py::t::x": ("median", 1e-3 * (1 + index % 3))})


@pytest.mark.parametrize("dirty", [True, False])
def test_a_dirty_working_tree_as_head_is_said_everywhere(repo: Path, dirty: bool) -> None:
    if dirty:
        (repo / "test_sum.py").write_text(PERF_TEST.format(n=300))
    cfg = ab.AbConfig(
        base="HEAD~1", head=None, pytest_args=(), fail=FailExpr("median", 0.05), repo=repo,
        min_runs=2, max_runs=2,
    )  # fmt: skip
    stream = io.StringIO()
    doc = ab.run_ab(cfg, progress=ab.Progress(stream), runner=_runner)
    assert doc["head"]["dirty"] is dirty
    text, md = ab.render_text(doc), ab.render_markdown(doc)
    if dirty:
        assert (
            "HEAD is the working tree, dirty: uncommitted changes on top of " in stream.getvalue()
        )
        assert "+ uncommitted changes (dirty))" in text.splitlines()[0]
        assert "**+ uncommitted changes (dirty)**" in md
    else:
        assert "dirty" not in stream.getvalue() + text + md


# --------------------------------------------------------------------------- a closed pipe


def _closed_stdout(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `perfsuite ARGS` with its stdout a pipe nobody reads (as `| head` leaves it)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "perfsuite.cli", *args],
        cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with proc:
        proc.stdout.close()
        err = proc.stderr.read()
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", err)


def _results(tmp_path: Path) -> Path:
    cand = {"name": "x", "samples_s": [1e-3, 2e-3], "stats": {"median": 1.5e-3}}
    doc = {
        "schema": "perfsuite.results",
        "schema_version": 1,
        "created": "2026-12-01T00:00:00+00:00",
        "machine": {"id": "m-1"},
        "commit": {"id": "0123456789abcdef", "dirty": False},
        "measurements": [
            {
                "test": "t.py::t",
                "name": f"x{i}",
                "id": f"t.py::t::x{i}",
                "kind": "measure",
                "candidate": cand,
            }
            for i in range(200)
        ],  # fmt: skip
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("command", ["report", "export-asv", "help"])
def test_a_reader_that_stops_reading_is_not_a_traceback(tmp_path: Path, command: str) -> None:
    path = _results(tmp_path)
    args = {
        "report": ["report", str(path), "--no-plots"],
        "export-asv": ["export-asv", str(path), "--results-dir", str(tmp_path / "asv")],
        "help": ["--help"],
    }[command]
    done = _closed_stdout(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr
    assert "Exception ignored" not in done.stderr


# --------------------------------------------------------------------------- signals, orphans


#: A perf test that takes turns for up to a minute: identical candidates never decide a
#: zero tolerance, so rounds go on until the budget. It first leaves its pid in $MARKS.
TURNS_FOREVER = """
import os
from pathlib import Path

import pytest


def work():
    return sum(range(200))


@pytest.mark.perf(budget=60)
def test_forever(perf):
    Path(os.environ["MARKS"], str(os.getpid())).write_text("")
    cmp = perf.compare(a=work, b=work)
    cmp.assert_no_slower("a", than="b", tolerance=0.0)
"""


def _alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped by init, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def ab_taking_turns(repo: Path, tmp_path: Path):
    """A real `perfsuite ab` whose two runs are taking turns: `(process, run pids)`."""
    (repo / "test_sum.py").write_text(TURNS_FOREVER)
    _git(repo, "commit", "-qam", "forever")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "forever, again")  # BASE = HEAD~1 alike
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**_env(), "MARKS": str(marks), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "perfsuite.cli", "ab", "HEAD~1", "HEAD", "--repo", str(repo),
         "--min-runs", "2", "--max-runs", "2", "--", "--perf-quick"],
        cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert _wait(lambda: len(list(marks.iterdir())) == 2, 60), "the runs never started"
        time.sleep(0.5)  # into their timed rounds, taking turns
        runs = [int(p.name) for p in marks.iterdir()]
        assert all(_alive(pid) for pid in runs)
        assert _git(repo, "worktree", "list").count("\n") == 2  # BASE and HEAD
        yield proc, runs
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        for pid in (int(p.name) for p in marks.iterdir()):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        _git(repo, "worktree", "prune")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminated_ab_removes_its_worktrees_and_runs(repo: Path, ab_taking_turns, sig) -> None:
    proc, runs = ab_taking_turns
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert f"perfsuite: error: terminated by {signal.Signals(sig).name}; no verdict" in err
    assert "Traceback" not in err
    assert _git(repo, "worktree", "list").count("\n") == 0  # only the main tree
    assert not any(_alive(pid) for pid in runs)


@pytest.mark.slow
def test_runs_whose_ab_is_killed_exit_within_seconds(repo: Path, ab_taking_turns) -> None:
    proc, runs = ab_taking_turns
    proc.kill()  # SIGKILL: no clean-up can run in `perfsuite ab` itself
    proc.communicate(timeout=30)
    start = time.monotonic()
    gone = _wait(lambda: not any(_alive(pid) for pid in runs), 30)
    elapsed = time.monotonic() - start
    assert gone, "orphaned runs still there after 30 s"
    # Seconds, not forever: on an idle machine this takes well under one; the margin is for
    # a loaded CI runner.
    assert elapsed < 10, f"orphaned runs took {elapsed:.1f} s to exit"


def test_with_jobs_a_failing_pair_stops_the_others_at_once(repo: Path, monkeypatch) -> None:
    """`--jobs`: the pairs running in other threads are told to stop (and kill their runs)."""

    def fake_pair(cfg, index, order, trees, out):
        if index == 0:
            raise ab.AbError("pair 1 crashed")
        # A real pair polls `stopping` while its runs take turns, as this one does.
        if _runs.stopping.wait(20):
            raise ab.AbError("stopped")
        raise AssertionError("never told to stop")

    monkeypatch.setattr(_loop, "run_pair", fake_pair)
    cfg = ab.AbConfig(
        base="HEAD~1", head="HEAD", pytest_args=(), fail=FailExpr("median", 0.05), repo=repo,
        min_runs=2, max_runs=2, jobs=2,
    )  # fmt: skip
    start = time.monotonic()
    with pytest.raises(ab.AbError, match="pair 1 crashed"):
        ab.run_ab(cfg)
    assert time.monotonic() - start < 10
    assert not _runs.stopping.is_set()  # cleared for the next run
    assert _git(repo, "worktree", "list").count("\n") == 0
