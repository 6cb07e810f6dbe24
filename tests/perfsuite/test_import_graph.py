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


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {t for t in _imports(p) if t in modules and t != name} for name, p in modules.items()
    }


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
    graph = import_graph()
    # The lazy package namespace (`perfsuite/__init__`) imports nothing at import time.
    graph["perfsuite"] = set()
    assert _cycles(graph) == [], "import cycles: " + "; ".join(
        " -> ".join(c) for c in _cycles(graph)
    )


def test_the_graph_sees_relative_and_function_level_imports():
    graph = import_graph()
    assert "perfsuite._results" in graph["perfsuite._session"]
    assert "perfsuite._errors" in graph["perfsuite.instruments._base"]
