"""The git side of `perfsuite ab`: revisions resolved to commits, throwaway worktrees.

Every call names the repository it runs in (`perfsuite._machine.git`, never the current
directory); a failure is the verdict's error (`AbError`), with git's own message.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .._errors import AbError
from .._machine import GitError, git_or_none
from .._machine import git as _machine_git


def git(repo: Path, *args: str) -> str:
    """`git args` in `repo`; its failure is an `AbError` (worktrees can take a while: 120 s)."""
    try:
        return _machine_git(repo, *args, timeout=120)
    except GitError as exc:
        raise AbError(str(exc)) from None


@functools.lru_cache(maxsize=8)
def toplevel(repo: Path) -> Path:
    """The top folder of the checkout `repo` lies in (`repo` may be a folder inside it)."""
    return Path(git(repo, "rev-parse", "--show-toplevel"))


def resolve_commit(repo: Path, rev: str, arg: str) -> str:
    """The full commit id of `rev`; an unknown one is an error naming `arg` (e.g. `BASE`)."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except AbError:
        raise AbError(
            f"`{arg}`={rev!r} is not a commit of the repository at {repo} "
            "(expected a branch, tag or commit, e.g. 'main' or 'HEAD~1')."
        ) from None


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    """Whether commit `older` is an ancestor of `newer` (git answers with its exit code)."""
    return git_or_none(repo, "merge-base", "--is-ancestor", older, newer, timeout=120) is not None


@contextlib.contextmanager
def worktrees(repo: Path, revs: dict[str, str]) -> Iterator[dict[str, Path]]:
    """Detached worktrees of `revs` (`{side: commit}`) in a temporary folder, removed after."""
    tmp = Path(tempfile.mkdtemp(prefix="perfsuite-ab-"))
    made: list[Path] = []
    try:
        out = {}
        for side, commit in revs.items():
            path = tmp / side.lower()
            git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit)
            made.append(path)
            out[side] = path
        yield out
    finally:
        for path in made:
            with contextlib.suppress(AbError):
                git(repo, "worktree", "remove", "--force", str(path))
        with contextlib.suppress(AbError):
            git(repo, "worktree", "prune")
        shutil.rmtree(tmp, ignore_errors=True)
