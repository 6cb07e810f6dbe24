"""Where a `perfsuite ab` run imports the project's code from: derived from the project at
each worktree (its pyproject, else its layout), never from this repository's own layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _ab_repo import git

import perfsuite
from perfsuite._values import FailExpr
from perfsuite.ab import AbConfig, import_roots, package_roots, run_env, worktrees
from perfsuite.ab._runs import run_once


ROOT = Path(perfsuite.__file__).resolve().parents[1]


def _package(folder: Path, name: str = "mypkg", version: int = 1) -> None:
    (folder / name).mkdir(parents=True, exist_ok=True)
    (folder / name / "__init__.py").write_text(f"VERSION = {version}\n")


# --------------------------------------------------------------------------- layouts


def test_a_flat_project_is_imported_from_its_root(tmp_path) -> None:
    _package(tmp_path)
    assert package_roots(tmp_path) == [tmp_path.resolve()]


def test_a_src_layout_is_detected(tmp_path) -> None:
    _package(tmp_path / "src")
    assert package_roots(tmp_path) == [(tmp_path / "src").resolve(), tmp_path.resolve()]


def test_an_empty_src_folder_is_not_a_layout(tmp_path) -> None:
    (tmp_path / "src" / "data").mkdir(parents=True)  # no package, no module in it
    assert package_roots(tmp_path) == [tmp_path.resolve()]


@pytest.mark.parametrize(
    ("pyproject", "folders"),
    [
        ('[tool.setuptools]\npackage-dir = {"" = "lib"}\n', ["lib"]),
        ('[tool.setuptools.package-dir]\nmypkg = "code/mypkg"\n', ["code"]),
        ('[tool.setuptools.packages.find]\nwhere = ["python"]\n', ["python"]),
        ('[tool.hatch.build.targets.wheel]\npackages = ["tool", "lib/mypkg"]\n', ["lib"]),
        ('[tool.hatch.build.targets.wheel]\nsources = ["lib"]\n', ["lib"]),
        ('[tool.poetry]\npackages = [{include = "mypkg", from = "lib"}]\n', ["lib"]),
        ('[tool.pdm.build]\npackage-dir = "lib"\n', ["lib"]),
    ],
)
def test_the_pyproject_names_the_folders(tmp_path, pyproject, folders) -> None:
    for name in ("lib", "code", "python", "src"):
        _package(tmp_path / name)  # `src` too: declared folders win over detection
    (tmp_path / "pyproject.toml").write_text(pyproject)
    assert package_roots(tmp_path) == [*((tmp_path / f).resolve() for f in folders), tmp_path]


def test_this_repositorys_own_layout_is_read_from_its_pyproject() -> None:
    """`packages = ["perfsuite", "src/trainfast"]`: the root and src/, found, not assumed."""
    assert package_roots(ROOT) == [ROOT / "src", ROOT]


@pytest.mark.parametrize(
    "pyproject",
    [
        '[tool.setuptools]\npackage-dir = {"" = "gone"}\n',  # not in this revision
        '[tool.setuptools]\npackage-dir = {"" = "../outside"}\n',  # outside the worktree
        "this is [not toml",  # pytest reports a broken pyproject itself
    ],
)
def test_folders_that_cannot_be_used_fall_back_to_the_layout(tmp_path, pyproject) -> None:
    _package(tmp_path / "src")
    (tmp_path.parent / "outside").mkdir(exist_ok=True)
    (tmp_path / "pyproject.toml").write_text(pyproject)
    assert package_roots(tmp_path) == [(tmp_path / "src").resolve(), tmp_path.resolve()]


def test_paths_into_the_main_checkout_are_mapped_into_the_worktree(tmp_path) -> None:
    """An editable install (`.pth`) or a `PYTHONPATH` of the main checkout: the same folders of
    the worktree instead, so a revision never imports the other's code; the rest is kept."""
    repo, tree = tmp_path / "repo", tmp_path / "wt"
    for root in (repo, tree):
        (root / "lib").mkdir(parents=True)  # declared nowhere: only the fallbacks find it
        (root / "tools").mkdir()
    elsewhere = str(tmp_path / "site")
    roots = import_roots(
        tree,
        repo,
        pythonpath=f"{repo / 'tools'}:{elsewhere}:{repo / 'missing'}:rel",
        pth=[repo / "lib", tmp_path / "other"],
    )
    t = tree.resolve()
    assert roots == [str(t / "lib"), str(t / "tools"), str(t), elsewhere, "rel"]


def test_the_working_tree_keeps_its_own_path(tmp_path) -> None:
    repo = tmp_path / "repo"
    _package(repo / "src")
    roots = import_roots(repo, repo, pythonpath=f"{repo / 'src'}:{repo}", pth=[])
    assert roots == [str(repo.resolve() / "src"), str(repo.resolve())]


# --------------------------------------------------------------------------- real worktrees


def _project(tmp_path: Path, layout: str) -> Path:
    """A git repository of `mypkg` at VERSION 1 (BASE), then 2 (HEAD), in `layout`."""
    repo = tmp_path / layout
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@perfsuite.invalid")
    git(repo, "config", "user.name", "t")
    where = {"flat": repo, "src": repo / "src", "declared": repo / "python"}[layout]
    if layout == "declared":
        (repo / "pyproject.toml").write_text(
            '[tool.setuptools.packages.find]\nwhere = ["python"]\n'
        )
    _package(where, version=1)
    (repo / "test_pkg.py").write_text(
        "import pytest\nimport mypkg\n\n\n@pytest.mark.perf\ndef test_v(perf):\n"
        "    perf.measure(lambda: sum(range(50)), name=f'v{mypkg.VERSION}')\n"
    )
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    _package(where, version=2)
    git(repo, "commit", "-qam", "head")
    return repo


@pytest.mark.parametrize("layout", ["flat", "src", "declared"])
def test_each_worktree_imports_its_own_revision(tmp_path, layout) -> None:
    """With the main checkout's package folder inherited on `PYTHONPATH` (as an install of
    it would), BASE's worktree still imports BASE's code. `-P`: no current directory on the
    path, so only the environment `run_env` makes can find the package."""
    repo = _project(tmp_path, layout)
    folder = {"flat": repo, "src": repo / "src", "declared": repo / "python"}[layout]
    base = git(repo, "rev-parse", "HEAD~1")
    with worktrees(repo, {"BASE": base}) as trees, pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(folder))
        env = run_env(trees["BASE"], repo)
        code = "import mypkg; print(mypkg.VERSION, mypkg.__file__)"
        out = subprocess.run(
            [sys.executable, "-P", "-c", code], cwd=tmp_path, env=env, capture_output=True,
            text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert out[0] == "1", (env["PYTHONPATH"], out)
        assert Path(out[1]).resolve().is_relative_to(trees["BASE"].resolve())
    assert git(repo, "worktree", "list").count("\n") == 0


def test_a_src_layout_project_measures_each_revisions_code(tmp_path, monkeypatch) -> None:
    """Real pytest runs (as `perfsuite ab --sequential` makes them) of a src-layout project
    that is not installed: each names the series after the version it imported."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}:{ROOT / 'src'}")  # the perfsuite under test
    repo = _project(tmp_path, "src")
    cfg = AbConfig(
        base="HEAD~1", head="HEAD", pytest_args=("--perf-quick",),
        fail=FailExpr("median", 0.05), repo=repo,
    )  # fmt: skip
    base, head = (git(repo, "rev-parse", r) for r in ("HEAD~1", "HEAD"))
    out = tmp_path / "out"
    out.mkdir()
    with worktrees(repo, {"BASE": base, "HEAD": head}) as trees:
        seen = {
            side: set(run_once(cfg, side, 0, trees[side], out).stats) for side in ("BASE", "HEAD")
        }
    assert seen == {"BASE": {"test_pkg.py::test_v::v1"}, "HEAD": {"test_pkg.py::test_v::v2"}}
