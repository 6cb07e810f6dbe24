"""`perfsuite/` has no import cycles: function-level and type-only imports included, since a
cycle hidden behind `TYPE_CHECKING` or a late import is still two modules that need each other."""

from __future__ import annotations

import ast
from pathlib import Path

import perfsuite


PACKAGE = Path(perfsuite.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """perfsuite modules `path` imports, at any depth (inside functions, `TYPE_CHECKING`)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join([*base, child.module] if child.module else base)
                else:
                    target = child.module or ""
                if target.startswith("perfsuite"):
                    found.add(target)
                    # `from . import _baseline` imports the submodule
                    for alias in child.names:
                        found.add(f"{target}.{alias.name}")
            elif isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("perfsuite"))
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def _parents(target: str) -> list[str]:
    """`perfsuite.ab._runs` -> `perfsuite.ab`: importing a submodule first runs the
    `__init__` of every package above it (the root `perfsuite` is left out: it is lazy)."""
    parts = target.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        own = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets = set()
        for t in _imports(path):
            targets.add(t)
            # A package above the target that the importer is not inside of runs its
            # `__init__` too: a real dependency (one inside it has already run it).
            targets.update(p for p in _parents(t) if not (own == p or own.startswith(p + ".")))
        graph[name] = {t for t in targets if t in modules and t != name and t != own}
    return graph


def _lazy_packages() -> dict[str, Path]:
    """Packages whose `__init__` exports lazily (PEP 562 `__getattr__`)."""
    out = {}
    for path in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body):
            out[_module_name(path)] = path
    return out


def _runtime_imports(path: Path) -> set[str]:
    """perfsuite modules imported by `path` when it runs (outside `if TYPE_CHECKING:` and
    outside functions), relative imports included."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        for child in ast.walk(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                break
            if isinstance(child, ast.ImportFrom) and (
                child.level or (child.module or "").startswith("perfsuite")
            ):
                found.add("." * child.level + (child.module or ""))
            elif isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("perfsuite"))
    return found


def _acyclic_graph() -> dict[str, set[str]]:
    graph = import_graph()
    # A lazy package namespace imports nothing of ours at import time (checked below): its
    # typed re-exports are not edges.
    for name in _lazy_packages():
        graph[name] = set()
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state = [], {}

    def dfs(node: str, stack: list[str]) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            # A package's __init__ re-exporting its own submodules is not a cycle of ours.
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                dfs(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            dfs(node, [])
    return cycles


def test_the_package_has_no_import_cycle():
    graph = _acyclic_graph()
    assert _cycles(graph) == [], "import cycles: " + "; ".join(
        " -> ".join(c) for c in _cycles(graph)
    )


def test_lazy_packages_import_nothing_of_ours_when_imported():
    lazy = _lazy_packages()
    assert {"perfsuite", "perfsuite.ab"} <= set(lazy)
    for name, path in lazy.items():
        assert _runtime_imports(path) == set(), name


def test_a_submodule_import_depends_on_the_packages_above_it():
    """`_profile` importing `perfsuite.ab._x` would run `perfsuite/ab/__init__.py` first: an
    edge to `perfsuite.ab` as well; a module inside `perfsuite.ab` has no edge to it."""
    assert _parents("perfsuite.ab._runs") == ["perfsuite.ab"]
    graph = import_graph()
    assert "perfsuite.ab" in graph["perfsuite.plugin"]  # `from .ab._turns import ...`
    assert "perfsuite.ab._turns" in graph["perfsuite.plugin"]
    assert "perfsuite.ab" not in graph["perfsuite.ab._loop"]  # `from . import _runs`
    assert "perfsuite.ab._runs" in graph["perfsuite.ab._loop"]


def test_the_ab_subpackage_is_in_the_graph_and_the_old_modules_are_gone():
    graph = import_graph()
    for part in ("_config", "_git", "_run_env", "_turns", "_runs", "_judge", "_loop"):
        assert f"perfsuite.ab.{part}" in graph
    for part in ("_report", "_profile", "_bisect"):
        assert f"perfsuite.ab.{part}" in graph
    for old in ("_ab", "_ab_runs", "_ab_config", "_ab_report", "_ab_profile", "_turns"):
        assert f"perfsuite.{old}" not in graph
    # The ab parts reach the rest of perfsuite, never the plugin or the CLI.
    for name, targets in graph.items():
        if name.startswith("perfsuite.ab"):
            assert not targets & {"perfsuite.plugin", "perfsuite.cli"}, name


def test_the_graph_sees_relative_and_function_level_imports():
    graph = import_graph()
    assert "perfsuite._results" in graph["perfsuite._session"]
    assert "perfsuite._errors" in graph["perfsuite.instruments._base"]
