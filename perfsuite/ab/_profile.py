"""`perfsuite ab --profile`: profiles of BASE and HEAD for every regressed series, diffed.

After the verdict (the paired runs are over and their worktrees gone), each revision is
checked out again in a worktree of its own and its perf tests run once more, alone, with
`--perf-profile=all`: every `perf.measure` and both sides of every assertion are profiled
there (`perfsuite._profile`), each writing `<candidate>.tables.json`. For each series the
verdict called a regression, HEAD's tables are diffed against BASE's, per call, and the
diffs go to `.perf/profiles/ab/<series>/` in the repository (the worktrees' own copies go
with them); both sides' pstats files are copied next to the diff.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .._errors import AbError
from .._profile import _safe, diff_tables
from .._results import SchemaError, iter_profiles, load_document
from ._config import AbConfig
from ._git import git, resolve_commit, worktrees
from ._run_env import pytest_command, run_env


def _profiled_run(cfg: AbConfig, side: str, tree: Path, out: Path) -> dict[str, dict]:
    """One run of `side` with every series profiled; `{series id: tables.json content}`."""
    json_path = out / f"{side.lower()}-profile.json"
    env = run_env(tree, cfg.repo)
    cmd = pytest_command(cfg, json_path, env) + ["--perf-profile=all"]
    proc = subprocess.run(
        cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=cfg.run_timeout_s
    )
    if proc.returncode not in (0, 1):
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise AbError(f"the profiling run of {side} exited with {proc.returncode}.\n{tail}")
    try:
        doc = load_document(json_path)
    except SchemaError as exc:
        raise AbError(f"the profiling run of {side} wrote no usable results: {exc}") from None
    found: dict[str, dict] = {}
    for p in iter_profiles(doc):
        entry = next(
            e
            for m in doc["measurements"]
            if m["id"] == p.measurement
            for e in m.get("profiles", [])
            if e["a"] == p.a and e.get("b") == p.b
        )
        kind = next(m["kind"] for m in doc["measurements"] if m["id"] == p.measurement)
        for name, rel in entry.get("tables", {}).items():
            sid = f"{p.test}::{name}" if kind == "compare" else p.measurement
            path = tree / rel
            if sid not in found and path.is_file():
                data = json.loads(path.read_text())
                data["pstats"] = str(path.with_name(path.name.replace(".tables.json", ".pstats")))
                found[sid] = data
    return found


def profile_regressions(cfg: AbConfig, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Profile both revisions and diff HEAD against BASE for each regressed series."""
    regressed = [m["series"] for m in doc["measurements"] if m["verdict"] == "regression"]
    if not regressed:
        return []
    repo = Path(git(cfg.repo, "rev-parse", "--show-toplevel"))
    revs = {"BASE": resolve_commit(repo, cfg.base, "BASE")}
    if cfg.head is not None:
        revs["HEAD"] = resolve_commit(repo, cfg.head, "HEAD")
    out_root = repo / ".perf" / "profiles" / "ab"
    found: dict[str, dict[str, dict]] = {}
    with worktrees(repo, revs) as trees, tempfile.TemporaryDirectory() as out:
        if cfg.head is None:
            trees["HEAD"] = repo  # the working tree, as `perfsuite ab` measured it
        for side in ("BASE", "HEAD"):
            found[side] = _profiled_run(cfg, side, trees[side], Path(out))
        results = []
        for sid in regressed:
            if sid not in found["BASE"] or sid not in found["HEAD"]:
                results.append({"series": sid, "error": "not profiled on both sides"})
                continue
            folder = out_root / _safe(sid)
            if folder.exists():
                shutil.rmtree(folder)
            r = diff_tables(
                found["HEAD"][sid]["tables"], found["BASE"][sid]["tables"], "HEAD", "BASE", folder
            )
            for side in ("BASE", "HEAD"):
                src = Path(found[side][sid]["pstats"])
                if src.is_file():  # copied out before the worktree goes
                    shutil.copyfile(src, folder / f"{side.lower()}.pstats")
            results.append({"series": sid, "folder": str(folder), "diffs": r.diffs, "top": r.top})
    return results


def render_profiles(profiles: list[dict[str, Any]]) -> str:
    lines = []
    for p in profiles:
        if "error" in p:
            lines.append(f"profile {p['series']}: {p['error']}")
            continue
        kind = next((k for k in ("torch", "jax", "host") if p["top"].get(k)), None)
        lines.append(f"profile {p['series']}: HEAD against BASE in {p['folder']}")
        if kind is not None:
            lines.append(f"  top of the {kind} diff ({p['diffs'][kind]}):")
            lines += [f"    {ln}" for ln in p["top"][kind]]
    return "\n".join(lines)
