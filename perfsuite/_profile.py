"""Profiles of both sides of a comparison, and their diff: what a failed check caught.

After a comparison's verdict (never inside its timed rounds: the engine's lock is released
and its rounds are over), each candidate is called again a few times under profilers, and
the artifacts go to `.perf/profiles/<test>/`:

- **host** (always): `cProfile` of each candidate, saved as `<candidate>.pstats` (the
  standard library's format: `python -m pstats FILE`, snakeviz, `pstats.Stats(FILE)`; chosen
  over speedscope JSON because it needs nothing to write and every Python tool reads it),
  and `diff-<a>-vs-<b>.host.txt`: every function with its change in *self* time per call and
  in calls per call, ranked by the size of the change in self time, then of calls; functions
  seen on one side only are marked `[only in a]`.
- **PyTorch** (an output holds a `torch.Tensor`): a `torch.profiler` trace per candidate,
  `<candidate>.torch.json` (Chrome trace JSON, opens in Perfetto and `chrome://tracing`), its
  `key_averages()` table `<candidate>.torch-ops.txt` (calls, self CPU and device time per
  call) and `diff-<a>-vs-<b>.torch.txt`: ops and kernels added, removed, slower, faster.
- **JAX** (an output holds a `jax.Array`): a `jax.profiler` trace per candidate in
  `<candidate>.jax/` (`*.xplane.pb` for TensorBoard/XProf and `perfetto_trace.json.gz` for
  ui.perfetto.dev); where `jax.profiler.ProfileData` reads it back, a device op table
  `<candidate>.jax-ops.txt` (op, count, time) and `diff-<a>-vs-<b>.jax.txt`.

Every number is *per call* (each side runs its own number of calls), so the sides compare
whatever their speed. A diff names the first side of the verdict `a` (the candidate the
claim is about) and the other `b`: a change is `a - b`. Files are written atomically
(`write_atomic`, or a whole folder renamed into place).

`--perf-profile=failed` (default) profiles after a failing or inconclusive assertion,
`all` after every assertion, `off` never; `@pytest.mark.perf(profile=...)` overrides it per
test.

This module decides when and what to profile and writes the artifacts; the profilers are
`_profilers`, the per-call tables' diff and its text files `_profile_diff`.
"""

from __future__ import annotations

import json
import marshal
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._profile_diff import MAX_ROWS, _join, _safe, _table_text, _write_diff
from ._profile_diff import diff_lines as diff_lines
from ._profile_diff import rank as rank
from ._profile_diff import test_folder as test_folder
from ._profilers import _holds, _host_profile, _jax_profile, _torch_profile
from ._profilers import host_table as host_table
from ._profilers import jax_op_table as jax_op_table
from ._results import write_atomic
from ._values import ProfileMode, Verdict


#: Seconds of calls each candidate runs under a profiler: enough calls that a function
#: called once per call is seen in every run, small next to a comparison's budget (20 s).
PROFILE_S = 0.25
#: Fewest and most calls under a profiler: a few even for a slow callable (one call can be
#: unrepresentative: a first-touch allocation); a cap so that a trace stays small (a torch
#: trace holds every op event: ~200 calls of a dozen ops is a few hundred kB).
MIN_CALLS, MAX_CALLS = 3, 200
#: Diff lines quoted at the end of a failure message.
TOP_LINES = 3


def _calls_for(per_call_s: float) -> int:
    if not (math.isfinite(per_call_s) and per_call_s > 0):
        return MIN_CALLS
    return max(MIN_CALLS, min(MAX_CALLS, int(PROFILE_S / per_call_s)))


@dataclass
class ProfileResult:
    """What was written for one comparison: paths (relative to `root`) and the diffs' tops."""

    folder: Path
    artifacts: dict[str, list[str]] = field(default_factory=dict)
    diffs: dict[str, str] = field(default_factory=dict)
    top: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    #: Per candidate: its tables as JSON (`{"calls": n, "tables": {profiler: {name: row}}}`).
    tables: dict[str, str] = field(default_factory=dict)

    def as_dict(self, root: Path) -> dict[str, Any]:
        def rel(p: str) -> str:
            try:
                return os.path.relpath(p, root)
            except ValueError:
                return p

        return {
            "folder": rel(str(self.folder)),
            "artifacts": {k: [rel(p) for p in v] for k, v in self.artifacts.items()},
            "diffs": {k: rel(v) for k, v in self.diffs.items()},
            "top": self.top,
            "tables": {k: rel(v) for k, v in self.tables.items()},
            "seconds": self.seconds,
            "errors": self.errors,
        }

    def note(self) -> str:
        """The end of a failure message: the diff's top lines and where the files are."""
        kind = next((k for k in ("torch", "jax", "host") if self.top.get(k)), None)
        lines = [f"profiles of both sides ({self.seconds:.1f} s, after the verdict): {self.folder}"]
        if kind is not None:
            lines.insert(0, f"top of the {kind} diff ({self.diffs[kind]}):")
            lines[1:1] = [f"  {ln}" for ln in self.top[kind][:TOP_LINES]]
        lines += [f"  (profiling failed: {e})" for e in self.errors]
        return "\n".join(lines)


def _profile_side(
    cand: Any, name: str, folder: Path, n: int, result: ProfileResult
) -> dict[str, dict[str, tuple]]:
    """Run `cand` `n` times under each profiler that applies; its tables by profiler."""
    fn, wait = cand.fn, cand.instrument.wait
    tables: dict[str, dict[str, tuple]] = {}
    probe = fn()  # what it returns decides which framework profilers apply
    wait(probe)
    prof = _host_profile(fn, wait, n)
    pstats_path = folder / f"{_safe(name)}.pstats"
    write_atomic(pstats_path, marshal.dumps(prof.stats))  # the format pstats reads
    result.artifacts.setdefault("host", []).append(str(pstats_path))
    tables["host"] = host_table(prof.stats, n)
    # The tables, machine-readable: `perfsuite ab --profile` diffs two revisions' tables.
    tables_path = folder / f"{_safe(name)}.tables.json"
    if "torch" in sys.modules and _holds(probe, "torch"):
        try:
            trace = folder / f"{_safe(name)}.torch.json"
            table = _torch_profile(fn, wait, n, trace)
            tables["torch"] = table
            ops = folder / f"{_safe(name)}.torch-ops.txt"
            write_atomic(ops, _table_text(table, f"torch ops of {name} ({n} calls)", "CPU"))
            result.artifacts.setdefault("torch", []).extend([str(trace), str(ops)])
        except Exception as exc:  # a profiler that cannot run here: say so, keep the rest
            result.errors.append(f"torch.profiler on {name}: {exc!r}")
    if "jax" in sys.modules and (_holds(probe, "jax") or _holds(probe, "jaxlib")):
        try:
            trace_dir = folder / f"{_safe(name)}.jax"
            table = _jax_profile(fn, wait, n, trace_dir)
            result.artifacts.setdefault("jax", []).append(str(trace_dir))
            if table is not None:
                tables["jax"] = table
                ops = folder / f"{_safe(name)}.jax-ops.txt"
                write_atomic(ops, _table_text(table, f"JAX ops of {name} ({n} calls)", "-"))
                result.artifacts["jax"].append(str(ops))
        except Exception as exc:
            result.errors.append(f"jax.profiler on {name}: {exc!r}")
    write_atomic(tables_path, json.dumps({"calls": n, "tables": tables}))
    result.tables[name] = str(tables_path)
    return tables


_WHAT = {"host": "self", "torch": "self CPU+device", "jax": "device"}


def profile_pair(
    candidates: dict[str, Any], a: str, b: str, folder: Path, *, calls: int | None = None
) -> ProfileResult:
    """Profile candidates `a` and `b` (engine `Candidate`s) and write their artifacts and diffs.

    `calls` forces the number of calls per side (else about `PROFILE_S` of calls each).
    """
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    result = ProfileResult(folder)
    sides = {}
    for name in (a, b):
        n = calls or _calls_for(candidates[name].per_call_s)
        sides[name] = _profile_side(candidates[name], name, folder, n, result)
    for kind in ("host", "torch", "jax"):
        if kind in sides[a] and kind in sides[b]:
            rows = _join(sides[a][kind], sides[b][kind])
            path = folder / f"diff-{_safe(a)}-vs-{_safe(b)}.{kind}.txt"
            header = f"{kind} profile diff of {a} against {b} (per call)"
            lines = _write_diff(path, rows, a, b, _WHAT[kind], header)
            result.diffs[kind] = str(path)
            result.top[kind] = lines[:TOP_LINES]
    result.seconds = time.perf_counter() - started
    return result


def profile_one(cand: Any, name: str, folder: Path, *, calls: int | None = None) -> ProfileResult:
    """Profile one candidate alone (nothing to diff against): its tables' top rows as `top`."""
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    result = ProfileResult(folder)
    tables = _profile_side(cand, name, folder, calls or _calls_for(cand.per_call_s), result)
    for kind, table in tables.items():
        # Against nothing, every function is "only in" this side: the same ranking, by time.
        rows = _join(table, {})
        path = folder / f"{_safe(name)}.{kind}.txt"
        header = f"{kind} profile of {name} alone (per call)"
        lines = diff_lines(rows, name, "-", what=_WHAT[kind])
        lines = [ln.replace(f" [only in {name}]", "") for ln in lines]
        write_atomic(path, "\n".join([header, *lines[:MAX_ROWS]]) + "\n")
        result.diffs[kind] = str(path)
        result.top[kind] = lines[:TOP_LINES]
    result.seconds = time.perf_counter() - started
    return result


def diff_tables(
    a_tables: dict[str, dict[str, Any]],
    b_tables: dict[str, dict[str, Any]],
    a: str,
    b: str,
    folder: Path,
) -> ProfileResult:
    """Diff two saved `tables.json` contents (e.g. HEAD's and BASE's runs of one series)."""
    result = ProfileResult(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for kind in ("host", "torch", "jax"):
        if kind in a_tables and kind in b_tables:
            ta = {k: tuple(v) for k, v in a_tables[kind].items()}
            tb = {k: tuple(v) for k, v in b_tables[kind].items()}
            path = folder / f"diff-{_safe(a)}-vs-{_safe(b)}.{kind}.txt"
            header = f"{kind} profile diff of {a} against {b} (per call)"
            lines = _write_diff(path, _join(ta, tb), a, b, _WHAT[kind], header)
            result.diffs[kind] = str(path)
            result.top[kind] = lines[:TOP_LINES]
    return result


def wanted(mode: str, verdict: str) -> bool:
    """Whether a verdict asks for profiles under `mode` (a `ProfileMode`)."""
    if mode == ProfileMode.OFF:
        return False
    return mode == ProfileMode.ALL or verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE)


class Profiler:
    """The fixture's hooks: after a comparison's verdict, profile its two sides (once); after
    the test, profile the series a baseline would call slower."""

    def __init__(self, mode: str, results_dir: Path, nodeid: str, root: Path):
        self.mode = mode
        self.folder = test_folder(results_dir, nodeid)
        self.root = root
        self._cleared = False

    def _target(self) -> Path:
        """The test's folder, emptied before its first profile of this run: files left by
        an earlier run (another candidate's name) must not pass for this run's."""
        if not self._cleared:
            shutil.rmtree(self.folder, ignore_errors=True)
            self._cleared = True
        return self.folder

    def _record(self, m: dict[str, Any], a: str, b: str | None, result: ProfileResult, why: str):
        note = result.note()
        entry = {"a": a, "b": b, **result.as_dict(self.root), "reason": why, "note": note}
        m.setdefault("profiles", []).append(entry)
        return note

    def after_verdict(
        self, verdict: dict[str, Any], candidates: dict[str, Any], m: dict[str, Any]
    ) -> str | None:
        """Profile `verdict`'s pair when the mode asks for it; the note for the message."""
        if not wanted(self.mode, verdict["verdict"]):
            return None
        a, b = verdict["ratio"]["a"], verdict["ratio"]["b"]
        for entry in m.get("profiles", []):  # a second assertion on the same pair
            if (entry["a"], entry["b"]) == (a, b):
                return entry["note"]
        try:
            result = profile_pair(candidates, a, b, self._target())
        except Exception as exc:
            # Profiling explains a verdict; it must never replace it with its own error.
            return f"profiling {a} and {b} failed: {exc!r}"
        return self._record(m, a, b, result, f"{verdict['assertion']}: {verdict['verdict']}")

    def after_test(
        self, sources: list[tuple[dict[str, Any], dict[str, Any]]], session: Any
    ) -> None:
        """Profile, alone, each series slower than the `--perf-compare` baseline (`failed`)
        or every `perf.measure` (`all`): the gate decides only at the end of the session,
        when the callables are gone, so the same judgement is made here, per test."""
        if self.mode == ProfileMode.OFF:
            return
        try:
            slower = _baseline_slower(sources, session)
        except Exception as exc:  # the gate itself reports at the end; never fail here
            session.notes.append(f"profiles: could not judge against the baseline: {exc!r}")
            return
        for m, cands in sources:
            done = {e["a"] for e in m.get("profiles", [])} | {e["b"] for e in m.get("profiles", [])}
            for name, cand in cands.items():
                sid = f"{m['test']}::{name}" if m["kind"] == "compare" else m["id"]
                why = slower.get(sid)
                if why is None and self.mode == ProfileMode.ALL and m["kind"] == "measure":
                    why = "--perf-profile=all"
                if why is None or name in done:
                    continue
                try:
                    result = profile_one(cand, name, self._target())
                except Exception as exc:
                    session.notes.append(f"profiles: profiling {sid} failed: {exc!r}")
                    continue
                self._record(m, name, None, result, why)
                if why != "--perf-profile=all":
                    top = (next(iter(result.top.values()), []) or ["(no rows)"])[0]
                    session.notes.append(f"profiles of {sid} ({why}): {result.folder}; top: {top}")


def _baseline_slower(sources: list[tuple[dict[str, Any], dict[str, Any]]], session: Any) -> dict:
    """`{series id: why}` for series the stored-baseline gate would call a regression or
    inconclusive, judged now with its own rule (`_baseline_judge.judge_series`) on this
    test's rounds."""
    sessions = getattr(session, "baseline_sessions", None)
    if not sessions:
        return {}
    import json

    from ._baseline import session_values
    from ._baseline_judge import judge_series
    from ._results import _default

    cfg = session.perf_config
    stat = cfg.fail.stat if cfg.fail else "median"
    limit = 1.0 + (cfg.fail.fraction if cfg.fail else 0.05)
    doc = {"measurements": json.loads(json.dumps([m for m, _ in sources], default=_default))}
    out = {}
    # The test's numbers with its machine-speed reference (attached before this runs), so
    # the series profiled are those the gate will judge slower.
    for sid, current in session_values(doc, stat).items():
        values = [s.number(sid) for s in sessions if sid in s.values]
        if not values:
            continue
        verdict = judge_series(current, values, limit)
        if verdict["verdict"] in ("regression", "inconclusive"):
            out[sid] = (
                f"{verdict['verdict']} against baseline {cfg.compare}: {verdict['ratio']:.3g}x "
                f"[{verdict['low']:.3g}, {verdict['high']:.3g}]"
            )
    return out
