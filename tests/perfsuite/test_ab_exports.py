"""`perfsuite.ab`'s lazy exports match its typed imports, and importing it costs nothing."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import perfsuite
import perfsuite.ab as ab


def test_lazy_exports_and_typed_imports_cannot_drift_apart() -> None:
    tree = ast.parse(Path(ab.__file__).read_text())
    typed = {
        alias.asname: "." * node.level + (node.module or "")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level
        for alias in node.names
        if alias.asname
    }
    assert typed == ab._EXPORTS
    assert set(ab.__all__) == set(ab._EXPORTS)
    for name, module in ab._EXPORTS.items():
        assert getattr(ab, name) is getattr(importlib.import_module(module, "perfsuite.ab"), name)


def test_the_plugins_import_of_the_turns_pulls_in_no_numpy() -> None:
    """The plugin imports `perfsuite.ab._turns` in every pytest run, `--perf` or not."""
    code = (
        "import sys, perfsuite.ab._turns; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'scipy')))"
    )
    root = Path(perfsuite.__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(root), "PATH": ""},
    ).stdout  # fmt: skip
    assert out.strip() == "[]"
