"""`perfsuite export-asv`: perfsuite results written as asv results, to join asv's history.

asv keeps, in its results directory, `benchmarks.json` (what each benchmark is), and per
machine `machine.json` plus one `<commit[:8]>-<env>.json` per commit and environment
(results API version 2: a `result_columns` list and one row per benchmark). This writes
exactly those, so `asv publish` graphs perfsuite's interleaved measurements next to the asv
suite's. Names are `perfsuite.<file>.<test>.<name>`, so they sit in their own branch of
the dashboard and never collide with the suite's. Every file is merged with what is
there (other benchmarks' results are kept) and written atomically; a file asv could not
read is an error and is left untouched.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import AsvExportError, SchemaError
from ._machine import git_or_none
from ._results import iter_series, load_document, write_atomic
from ._stats import sign_test_interval


RESULTS_API_VERSION = 2
MACHINE_API_VERSION = 1
BENCHMARKS_API_VERSION = 2
COLUMNS = [
    "result",
    "params",
    "version",
    "started_at",
    "duration",
    "stats_ci_99_a",
    "stats_ci_99_b",
    "stats_q_25",
    "stats_q_75",
    "stats_number",
    "stats_repeat",
    "samples",
    "profile",
]


def asv_name(series_id: str) -> str:
    """`tests/x/test_a.py::test_b[p]::name` -> `perfsuite.tests_x_test_a.test_b[p].name`."""
    parts = series_id.split("::")
    parts[0] = re.sub(r"\.py$", "", parts[0])
    return "perfsuite." + ".".join(re.sub(r"[./\\\s]+", "_", p) for p in parts)


def _version(name: str, kind: str, unit: str) -> str:
    # Stable across exports (not a hash of code, which asv would use): history must join.
    return hashlib.sha256(f"perfsuite-1:{name}:{kind}:{unit}".encode()).hexdigest()


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _time_row(samples: list[float], iterations: int | None) -> dict[str, Any]:
    x = np.asarray(samples, dtype=float)
    _, low, high = sign_test_interval(x, level=0.99)
    q25, q75 = np.percentile(x, [25, 75])
    return {
        "result": [float(np.median(x))],
        "params": [],
        "stats_ci_99_a": [_finite_or_none(low)],
        "stats_ci_99_b": [_finite_or_none(high)],
        "stats_q_25": [float(q25)],
        "stats_q_75": [float(q75)],
        "stats_number": [iterations],
        "stats_repeat": [int(x.size)],
        "samples": [list(map(float, x))],
    }


def benchmarks_from(doc: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """`{asv name: (benchmarks.json entry, result row fields)}` for every exportable number."""
    out: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def add(sid: str, kind: str, unit: str, row: dict[str, Any], code: str, params=None):
        name = asv_name(sid)
        params = params or []
        entry = {
            "name": name,
            "pretty_name": sid,
            "type": kind,
            "unit": unit,
            "params": params,
            "param_names": ["size"] if params else [],
            "version": _version(name, kind, unit),
            "code": code,
            "timeout": 60.0,
            "number": 0,
            "repeat": 0,
            "rounds": 1,
            "min_run_count": 1,
            "sample_time": 0.01,
            "warmup_time": -1,
        }
        out[name] = (entry, {**row, "version": entry["version"]})

    for s in iter_series(doc):
        code = f"# perfsuite {s.kind} measurement {s.measurement['id']}"
        if s.timed:
            if s.samples:
                add(s.id, "time", "seconds", _time_row(list(s.samples), s.iterations), code)
        elif s.kind == "scaling":
            f = s.entry
            sizes = [f"{n:g}" for n in f["sizes"]]
            row = {"result": [float(v) for v in f["median_s"]], "params": [sizes]}
            row["stats_repeat"] = [f["rounds"]] * len(sizes)
            add(s.id, "time", "seconds", row, code, params=[sizes])
        elif s.kind == "record":
            row = {"result": [float(s.entry["value"])], "params": []}
            add(s.id, "track", s.unit or "unit", row, code)
        elif s.kind == "memory":
            # asv's memory benchmarks (`mem_`/`peakmem_`) chart bytes: the call's peak.
            row = {"result": [float(s.entry["peak_bytes"])], "params": []}
            add(s.id, "memory", "bytes", row, code)
        elif s.kind == "counts":
            # The exact tier: one `track_` series per deterministic counter, and the
            # roofline's rates and fractions of peak (see perfsuite._counts_view).
            from ._counts_view import tracks

            for key, value, unit in tracks(s.entry):
                add(f"{s.id}::track_{key}", "track", unit, {"result": [value], "params": []}, code)
    return out


def _load_asv_json(path: Path, api_version: int) -> dict[str, Any] | None:
    """An existing asv file, or None if absent; unreadable or foreign is an error."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AsvExportError(
            f"{path}: not a readable asv JSON file ({exc}); it was left as it is."
        ) from None
    if not isinstance(data, dict) or data.get("version") != api_version:
        raise AsvExportError(
            f"{path}: asv file of API version {data.get('version') if isinstance(data, dict) else None!r}, "
            f"expected {api_version}; it was left as it is."
        )
    return data


def _read_results_dir(config: Path) -> Path:
    """`results_dir` from asv.conf.json (asv allows `//` comments), relative to its folder."""
    if not config.is_file():
        return Path(".asv") / "results"
    text = "\n".join(
        line for line in config.read_text().splitlines() if not line.lstrip().startswith("//")
    )
    try:
        conf = json.loads(text)
    except ValueError as exc:
        raise AsvExportError(f"`--config` {config}: not readable JSON ({exc}).") from None
    return config.parent / conf.get("results_dir", "results")


def _commit_date_ms(commit: str, doc: dict[str, Any], repo: Path) -> int:
    """asv's `date` is the commit's date (JavaScript ms), asked of `repo`, the checkout the
    results were measured in when it is still there, else the one the asv config is in; the
    results' own date where neither knows the commit."""
    recorded = (doc.get("commit") or {}).get("repo")
    for where in ([Path(recorded)] if recorded and Path(recorded).is_dir() else []) + [repo]:
        out = git_or_none(where, "show", "-s", "--format=%ct", commit)
        if out and out.isdigit():
            return int(out) * 1000
    created = _dt.datetime.fromisoformat(doc["created"])
    return int(created.timestamp() * 1000)


def _machine_info(doc: dict[str, Any], name: str) -> dict[str, Any]:
    m = doc.get("machine", {})
    cpu = m.get("cpu_model", "")
    if m.get("gpu_models"):
        cpu += " + " + ", ".join(m["gpu_models"])
    if m.get("tpu"):
        cpu += f" + TPU {m['tpu']}"
    return {
        "machine": name,
        "arch": m.get("machine", ""),
        "cpu": cpu,
        "num_cpu": str(m.get("cores", "")),
        "os": f"{m.get('system', '')}",
        "ram": "",
        "version": MACHINE_API_VERSION,
    }


def export(
    results: Path,
    *,
    results_dir: Path | None = None,
    config: Path = Path("asv.conf.json"),
    machine: str | None = None,
    env_name: str | None = None,
) -> list[Path]:
    """Write `results` (a perfsuite results file) into an asv results directory.

    Returns the files written: `benchmarks.json`, `<machine>/machine.json` and
    `<machine>/<commit[:8]>-<env>.json`.
    """
    try:
        doc = load_document(results)
    except SchemaError as exc:
        raise AsvExportError(f"`RESULTS.json`: {exc}") from None
    commit = (doc.get("commit") or {}).get("id")
    if not commit:
        raise AsvExportError(
            f"`RESULTS.json`: {results} records no git commit (it was not measured in a git "
            "checkout); asv history is keyed by commit."
        )
    benches = benchmarks_from(doc)
    if not benches:
        raise AsvExportError(f"`RESULTS.json`: {results} has no measurement asv can show.")
    if machine is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", machine):
        raise AsvExportError(
            f"`--machine`={machine!r} must be letters, digits, '_', '.', '-' (a folder name)."
        )
    root = results_dir if results_dir is not None else _read_results_dir(config)
    name = machine or doc["machine"]["id"]
    python = doc["machine"].get("python", "")
    python = ".".join(python.split(".")[:2])
    env = env_name or f"perfsuite-py{python}"
    folder = root / name
    result_path = folder / f"{commit[:8]}-{env}.json"

    # Read everything first: a bad existing file stops the export before anything is written.
    bench_path = root / "benchmarks.json"
    bench_doc = _load_asv_json(bench_path, BENCHMARKS_API_VERSION) or {
        "version": BENCHMARKS_API_VERSION
    }
    existing = _load_asv_json(result_path, RESULTS_API_VERSION)
    if existing is not None and existing.get("result_columns") != COLUMNS:
        raise AsvExportError(
            f"{result_path}: unknown result columns {existing.get('result_columns')!r}; "
            "it was left as it is."
        )

    info = _machine_info(doc, name)
    params = {k: v for k, v in info.items() if k != "version"}
    params["python"] = python
    data = existing or {
        "commit_hash": commit,
        "env_name": env,
        "date": _commit_date_ms(commit, doc, config.resolve().parent),
        "params": params,
        "python": python,
        "requirements": {},
        "env_vars": {},
        "result_columns": COLUMNS,
        "results": {},
        "durations": {},
        "version": RESULTS_API_VERSION,
    }
    started = int(_dt.datetime.fromisoformat(doc["created"]).timestamp() * 1000)
    for bname, (entry, row) in benches.items():
        bench_doc[bname] = entry
        full = {**row, "started_at": started}
        values = [full.get(col) for col in COLUMNS]
        while values and values[-1] is None:
            values.pop()
        data["results"][bname] = values

    write_atomic(bench_path, json.dumps(bench_doc, indent=4, sort_keys=True) + "\n")
    write_atomic(folder / "machine.json", json.dumps(info, indent=4, sort_keys=True) + "\n")
    write_atomic(result_path, json.dumps(data) + "\n")
    return [bench_path, folder / "machine.json", result_path]
