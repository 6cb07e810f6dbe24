"""Where a run of `perfsuite ab` imports the project's own code from, and its command line.

Every run starts in the worktree of its revision and must import *that* revision's code: an
editable install of the main checkout (a `.pth` file naming its folders) or a `PYTHONPATH`
pointing into it would otherwise make BASE import HEAD's code, and the comparison would
measure one revision twice. So the worktree's own package folders go first on the run's
`PYTHONPATH`, found in the worktree itself (`package_roots`), because the layout is the
project's, not perfsuite's, and it can change from one revision to the next:

1. the folders its `pyproject.toml` names: setuptools (`[tool.setuptools] package-dir`,
   `[tool.setuptools.packages.find] where`), hatch (`[tool.hatch.build.targets.wheel]
   packages`: each package's parent folder, and `sources`), poetry (`packages = [{include,
   from}]`) and pdm (`[tool.pdm.build] package-dir`);
2. where it names none: `src/`, when it holds a package or a module (the src layout);
3. the worktree's root, always, last (the flat layout; `conftest.py` and test helpers).

Two fallbacks keep a project whose folders are declared nowhere that can be read here (a
`setup.py` with its own `package_dir`) from importing the wrong revision: the folders this
interpreter's `.pth` files add from the repository (an editable install) and the entries of
the inherited `PYTHONPATH` that lie in the repository are mapped to the same folders of the
worktree, when those exist there. Other `PYTHONPATH` entries stay, after all of these.
"""

from __future__ import annotations

import os
import site
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._git import toplevel


if TYPE_CHECKING:
    from ._config import AbConfig


def _declared(pyproject: dict[str, Any]) -> list[str]:
    """Folders (relative to the project root) that `pyproject` says hold its packages."""
    tool = pyproject.get("tool", {})
    out: list[str] = []
    st = tool.get("setuptools", {})
    package_dir = st.get("package-dir", {})
    if isinstance(package_dir, dict):
        for pkg, folder in package_dir.items():
            if pkg == "":
                out.append(str(folder))
            elif Path(str(folder)).name == str(pkg).rsplit(".", 1)[-1]:
                out.append(str(Path(str(folder)).parent))  # `{"pkg" = "lib/pkg"}`: lib
    find = st.get("packages", {})
    if isinstance(find, dict):
        out += [str(w) for w in find.get("find", {}).get("where", [])]
    wheel = tool.get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {})
    out += [str(Path(str(p)).parent) for p in wheel.get("packages", [])]
    sources = wheel.get("sources", [])
    out += [str(s) for s in (sources if isinstance(sources, list) else sources.keys())]
    for entry in tool.get("poetry", {}).get("packages", []):
        if isinstance(entry, dict) and "include" in entry:
            out.append(str(entry.get("from", ".")))
    pdm_dir = tool.get("pdm", {}).get("build", {}).get("package-dir")
    if isinstance(pdm_dir, str):
        out.append(pdm_dir)
    return out


def _holds_code(folder: Path) -> bool:
    return folder.is_dir() and any(
        (child / "__init__.py").is_file() or child.suffix == ".py" for child in folder.iterdir()
    )


def package_roots(tree: Path) -> list[Path]:
    """The folders of the project checked out at `tree` to import its code from, in order
    (see the module docstring); the root is always the last."""
    tree = Path(tree)
    names: list[str] = []
    try:
        names = _declared(tomllib.loads((tree / "pyproject.toml").read_text()))
    except (OSError, tomllib.TOMLDecodeError, AttributeError, TypeError):
        # No pyproject, or one that cannot be read: the run's pytest reports a broken one
        # itself; here the layout is then detected.
        names = []
    roots: list[Path] = []
    for name in names:
        folder = (tree / name).resolve()
        # Only folders inside the worktree that exist in this revision.
        if folder.is_dir() and (folder == tree.resolve() or tree.resolve() in folder.parents):
            roots.append(folder)
    if not roots and _holds_code(tree / "src"):
        roots.append((tree / "src").resolve())
    roots = [r for r in roots if r != tree.resolve()]
    return list(dict.fromkeys([*roots, tree.resolve()]))


def pth_entries(site_dirs: Iterable[str] | None = None) -> list[Path]:
    """The folders this interpreter's `.pth` files put on the import path (an editable
    install's), without their `import` lines."""
    if site_dirs is None:
        site_dirs = [*site.getsitepackages(), site.getusersitepackages()]
    out: list[Path] = []
    for d in site_dirs:
        folder = Path(d)
        if not folder.is_dir():
            continue
        for pth in sorted(folder.glob("*.pth")):
            try:
                lines = pth.read_text().splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            for line in lines:
                line = line.strip()
                if line and not line.startswith(("#", "import ", "import\t")):
                    out.append((folder / line).resolve())
    return out


def _inside(p: Path, repo: Path) -> bool:
    return p == repo or repo in p.parents


def _mapped(entries: Iterable[Path], repo: Path, tree: Path) -> list[Path]:
    """`entries` that lie in the checkout `repo`, as the same folders of `tree` (if there)."""
    out = []
    for p in entries:
        if _inside(p, repo) and (tree / p.relative_to(repo)).is_dir():
            out.append((tree / p.relative_to(repo)).resolve())
    return out


def import_roots(
    tree: Path, repo: Path, *, pythonpath: str = "", pth: Iterable[Path] | None = None
) -> list[str]:
    """The `PYTHONPATH` entries of a run in `tree` of the checkout `repo` (its top folder),
    given the inherited `pythonpath` and `.pth` folders (default: this interpreter's)."""
    repo, tree = Path(repo).resolve(), Path(tree).resolve()
    inherited = [e for e in pythonpath.split(os.pathsep) if e]
    absolute = [Path(e).resolve() for e in inherited if os.path.isabs(e)]
    ours = [
        *package_roots(tree)[:-1],
        *_mapped(pth_entries() if pth is None else pth, repo, tree),
        *_mapped(absolute, repo, tree),
        tree,
    ]
    # The rest of the inherited path, without the entries that reach into the main checkout
    # (mapped above): kept, they would let a revision import the other one's code.
    rest = [
        e
        for e in inherited
        if tree == repo or not (os.path.isabs(e) and _inside(Path(e).resolve(), repo))
    ]
    return list(dict.fromkeys([*(str(p) for p in ours), *rest]))


def run_env(tree: Path, repo: Path | None = None) -> dict[str, str]:
    """Environment of one run in `tree`: the worktree's own code first on the import path."""
    env = dict(os.environ)
    top = toplevel(Path(repo or tree))
    env["PYTHONPATH"] = os.pathsep.join(
        import_roots(tree, top, pythonpath=env.get("PYTHONPATH", ""))
    )
    return env


def _needs_plugin_flag(env: dict[str, str]) -> bool:
    """`-p perfsuite.plugin` only when the entry point will not load it (twice is an error)."""
    if env.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return True
    from importlib.metadata import entry_points

    return not any(ep.value == "perfsuite.plugin" for ep in entry_points(group="pytest11"))


def pytest_command(cfg: AbConfig, json_path: Path, env: dict[str, str]) -> list[str]:
    """The command of one run: the selected perf tests, results to `json_path`."""
    cmd = [cfg.python, "-m", "pytest", "--perf", f"--perf-json={json_path}", "-q"]
    cmd += ["-p", "no:cacheprovider"]  # leave the measured tree untouched
    if _needs_plugin_flag(env):
        cmd += ["-p", "perfsuite.plugin"]
    return cmd + list(cfg.pytest_args)
