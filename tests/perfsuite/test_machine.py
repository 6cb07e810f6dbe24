"""Machine and git facts: one `git()` that always runs in the repository it is given."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import perfsuite
from perfsuite import _asv_export
from perfsuite._machine import GitError, commit_info, git, git_or_none


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_COMMITTER_DATE": "2001-09-09T01:46:40+00:00"}
    for args in (
        ["init", "-q"],
        ["config", "user.email", "t@perfsuite.invalid"],
        ["config", "user.name", "t"],
        ["commit", "-q", "--allow-empty", "-m", "one"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    return repo


def test_git_runs_in_the_repository_it_is_given(repo: Path, tmp_path: Path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not a checkout: only `repo` knows the commit
    head = git(repo, "rev-parse", "HEAD")
    assert len(head) == 40
    info = commit_info(repo)
    assert info["id"] == head
    assert info["repo"] == str(repo.resolve())
    assert git_or_none(elsewhere, "rev-parse", "HEAD") is None
    with pytest.raises(GitError, match=f"git rev-parse HEAD failed in {elsewhere}"):
        git(elsewhere, "rev-parse", "HEAD")
    assert issubclass(GitError, perfsuite.PerfError)


def test_asv_dates_come_from_the_measured_checkout_not_the_current_directory(
    repo: Path, tmp_path: Path, monkeypatch
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    head = git(repo, "rev-parse", "HEAD")
    doc = {"commit": {"id": head, "repo": str(repo)}, "created": "2026-01-01T00:00:00+00:00"}
    assert _asv_export._commit_date_ms(head, doc, elsewhere) == 1_000_000_000_000
    # Without the recorded checkout, the asv config's folder is asked; then the results' date.
    doc = {"commit": {"id": head}, "created": "2026-01-01T00:00:00+00:00"}
    assert _asv_export._commit_date_ms(head, doc, repo) == 1_000_000_000_000
    assert _asv_export._commit_date_ms(head, doc, elsewhere) == 1_767_225_600_000
