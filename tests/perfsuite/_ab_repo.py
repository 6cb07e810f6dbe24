"""A throwaway git repository of a trivial perf test, for the `perfsuite ab` tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


PERF_TEST = """
import pytest


def work():
    return sum(range({n}))


@pytest.mark.perf
def test_sum(perf):
    perf.measure(work, name="sum")
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(tmp_path: Path) -> Path:
    """Two commits of `test_sum.py`: BASE, then HEAD with twice the work."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@perfsuite.invalid")
    git(repo, "config", "user.name", "t")
    (repo / "test_sum.py").write_text(PERF_TEST.format(n=200))
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    (repo / "test_sum.py").write_text(PERF_TEST.format(n=400))
    git(repo, "commit", "-qam", "head")
    return repo
