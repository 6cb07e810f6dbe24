"""The `perfsuite` command under stress: a dirty HEAD, a closed pipe, SIGTERM/SIGHUP, orphans."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import perfsuite
from perfsuite import _ab
from perfsuite._options import FailExpr


PERF_TEST = """
import pytest


def work():
    return sum(range({n}))


@pytest.mark.perf
def test_sum(perf):
    perf.measure(work, name="sum")
"""

#: The perfsuite being tested, first on the import path of every subprocess.
ROOT = Path(perfsuite.__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@perfsuite.invalid")
    _git(repo, "config", "user.name", "t")
    (repo / "test_sum.py").write_text(PERF_TEST.format(n=200))
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "base")
    (repo / "test_sum.py").write_text(PERF_TEST.format(n=400))
    _git(repo, "commit", "-qam", "head")
    return repo


# --------------------------------------------------------------------------- a dirty HEAD


def _runner(cfg, side, index, tree, out):
    return _ab.RunResult(side, index, 0.01, 0, {"t.py::t::x": ("median", 1e-3 * (1 + index % 3))})


@pytest.mark.parametrize("dirty", [True, False])
def test_a_dirty_working_tree_as_head_is_said_everywhere(repo: Path, dirty: bool) -> None:
    if dirty:
        (repo / "test_sum.py").write_text(PERF_TEST.format(n=300))
    cfg = _ab.AbConfig(
        base="HEAD~1", head=None, pytest_args=(), fail=FailExpr("median", 0.05), repo=repo,
        min_runs=2, max_runs=2,
    )  # fmt: skip
    stream = io.StringIO()
    doc = _ab.run_ab(cfg, progress=_ab.Progress(stream), runner=_runner)
    assert doc["head"]["dirty"] is dirty
    text, md = _ab.render_text(doc), _ab.render_markdown(doc)
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
