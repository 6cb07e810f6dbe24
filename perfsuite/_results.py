"""The results document: fingerprint, commit, every measurement; written atomically."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import SchemaError as SchemaError
from ._machine import MACHINE_KEYS as MACHINE_KEYS
from ._machine import commit_info as commit_info
from ._machine import fingerprint as fingerprint
from ._machine import machine_fingerprint as machine_fingerprint
from ._machine import machine_id as machine_id


SCHEMA = "perfsuite.results"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Series:
    """One series of a results document, as every reader sees it (`iter_series`).

    `kind` is the measurement's (`measure`, `steps`, `compare`, `scaling`, `record`,
    `counts`, or a kind this version does not know); a comparison gives one series per
    candidate. A counted candidate (or steps) is followed by a `counts` series,
    `<its id>::counts`, whose `entry` holds `counts` (`Counts.to_json`) and `roofline`. Timed
    series (`timed`) carry `samples`: seconds per call per round (per step for `steps`),
    the numbers baselines, `perfsuite ab` and asv compare. `entry` is the part of the
    measurement the series was read from (the candidate, the steps, the fit, the record),
    `measurement` the whole of it, for readers that render more than the samples.
    """

    id: str
    test: str
    name: str
    kind: str
    unit: str
    samples: tuple[float, ...]
    entry: dict[str, Any]
    measurement: dict[str, Any]
    #: Calls per round behind each sample (None where not applicable).
    iterations: int | None = None
    #: The machine-speed reference timed while the measurement ran (`perfsuite._reference`):
    #: seconds per sample, and the kernel's id; empty/None where none was recorded.
    reference: tuple[float, ...] = ()
    reference_kernel: str | None = None
    #: Share of the series' timed rounds its thread computed (~1 CPU-bound, ~0 sleeping or
    #: waiting on a device); the whole test's share in documents without the rounds' own.
    cpu_share: float | None = None

    @property
    def timed(self) -> bool:
        return self.kind in ("measure", "steps", "compare")


def measurement_series(m: dict[str, Any]) -> list[Series]:
    """The series of one measurement (of a document `validate_document` accepted)."""
    kind = m["kind"]
    # `validate_document` requires `test` and `name`; documents built in memory by older
    # code may carry only the id, which holds both.
    test = m.get("test") or m["id"].rsplit("::", 1)[0]
    name = m.get("name") or m["id"].rsplit("::", 1)[-1]

    ref = m.get("reference") if isinstance(m.get("reference"), dict) else {}
    ref_samples, ref_kernel = tuple(ref.get("samples_s", ())), ref.get("kernel")
    ref_fields = dict(reference=ref_samples, reference_kernel=ref_kernel)

    def make(sid, name, unit, samples, entry, iterations=None):
        s = Series(sid, test, name, kind, unit, tuple(samples), entry, m, iterations)
        # The share of the series' own timed rounds where it was recorded; the test's
        # (which includes perfsuite's untimed work) in documents from before it was.
        share = entry.get("cpu_share") if isinstance(entry, dict) else None
        if share is None:
            share = ref.get("cpu_share")
        return dataclasses.replace(s, **ref_fields, cpu_share=share)

    if kind in ("measure", "steps", "compare"):
        return _with_counts(_timed_series(m, kind, test, name, make), make)
    if kind == "counts":
        # `perf.counts`: exact counts of one call, no time.
        return [make(m["id"], name, "count", (), m)]
    if kind == "memory":
        # `perf.memory`: one call's peak, no time.
        return [make(m["id"], name, "bytes", (m["memory"]["peak_bytes"],), m["memory"])]
    if kind == "scaling":
        return [make(m["id"], name, "s", (), m["scaling"])]
    if kind == "record":
        return [make(m["id"], name, m.get("unit") or "", (), m)]
    return [make(m["id"], name, "", (), m)]  # a kind from a newer perfsuite


def _with_counts(timed: list[Series], make: Any) -> list[Series]:
    """Each timed series, followed by its candidate's counts (kind `counts`, id
    `<series id>::counts`) where the candidate was counted: the exact tier."""
    out: list[Series] = []
    for s in timed:
        out.append(s)
        if isinstance(s.entry.get("counts"), dict):
            c = make(f"{s.id}::counts", s.name, "count", (), s.entry)
            out.append(Series(c.id, c.test, c.name, "counts", c.unit, (), s.entry, s.measurement))
    return out


def _timed_series(m: dict[str, Any], kind: str, test: str, name: str, make: Any) -> list[Series]:
    if kind == "measure":
        c = m["candidate"]
        return [
            make(m["id"], name, "s", c["samples_s"], c, c.get("iterations_per_round")),
            *_memory_series(m, m["id"], name, c),
        ]
    if kind == "steps":
        return [
            make(m["id"], name, "s", m["steps"]["samples_s"], m["steps"], 1),
            *_memory_series(m, m["id"], name, m["steps"]),
        ]
    if kind == "compare":
        out = []
        for c in m["comparison"]["candidates"]:
            sid = f"{test}::{c['name']}"
            out.append(make(sid, c["name"], "s", c["samples_s"], c, c.get("iterations_per_round")))
            out.extend(_memory_series(m, sid, c["name"], c))
        return out
    raise AssertionError(kind)


#: What a timed series' memory series adds to its id (`<series id>::memory`).
MEMORY_SUFFIX = "::memory"


def _memory_series(m: dict[str, Any], sid: str, name: str, entry: dict[str, Any]) -> list[Series]:
    """The memory series of a timed series whose entry carries `memory` (`perfsuite._memory`):
    kind `memory`, unit bytes, one sample, the peak; `entry` is the `MemoryStats` dict."""
    mem = entry.get("memory")
    if not isinstance(mem, dict):
        return []
    test = m.get("test") or m["id"].rsplit("::", 1)[0]
    return [
        Series(
            sid + MEMORY_SUFFIX, test, name, "memory", "bytes", (float(mem["peak_bytes"]),), mem, m
        )
    ]


def iter_series(doc: dict[str, Any]) -> Iterator[Series]:
    """Every series of a results document, in the order measured: the one reader of
    `measurements` that baselines, `perfsuite ab`, asv export, reports and plots share."""
    for m in doc.get("measurements", []):
        yield from measurement_series(m)


@dataclass(frozen=True)
class Profiles:
    """Profiles of both sides of one comparison (issue 16), as readers see them.

    `artifacts` maps a profiler (`host`, `torch`, `jax`) to its files, `diffs` a profiler to
    its diff file, `top` a profiler to the diff's first lines; paths are relative to the
    project's root (where `.perf/` is).
    """

    test: str
    measurement: str
    a: str
    #: The other side of the diff, or None for one series profiled alone (a regression
    #: against a baseline, or `--perf-profile=all` on `perf.measure`).
    b: str | None
    folder: str
    artifacts: dict[str, list[str]]
    diffs: dict[str, str]
    top: dict[str, list[str]]


def iter_profiles(doc: dict[str, Any]) -> Iterator[Profiles]:
    """Every measurement's profiles in a results document (the one reader of `profiles`)."""
    for m in doc.get("measurements", []):
        for p in m.get("profiles", []):
            yield Profiles(
                m.get("test") or m["id"].rsplit("::", 1)[0],
                m["id"],
                p["a"],
                p.get("b"),
                p["folder"],
                dict(p.get("artifacts", {})),
                dict(p.get("diffs", {})),
                {k: list(v) for k, v in p.get("top", {}).items()},
            )


def series(doc: dict[str, Any]) -> dict[str, list[float]]:
    """Every timed series by stable id: seconds per call per round (see `Series`)."""
    return {s.id: list(s.samples) for s in iter_series(doc) if s.timed}


# --- one number per run (stored baselines and `perfsuite ab`, issue 13)


def run_statistics(doc: dict[str, Any], stat: str | None) -> dict[str, tuple[str, float]]:
    """One robust number per timed series of one run: `{series id: (statistic, seconds)}`.

    `stat=None` takes the median of the rounds (or steps) for every kind: on the CI VM it
    varied less from process to process than the min (2-4% vs 3-7% for one loop), which
    follows single unusually fast rounds. Stored baselines reduce a session and `perfsuite ab`
    a run with this same function, so the two gates read a session the same way.
    """
    import numpy as np  # only here: writing and reading results needs no NumPy

    out: dict[str, tuple[str, float]] = {}
    for s in iter_series(doc):
        if not s.timed:
            continue
        x = np.asarray(s.samples, dtype=float)
        x = x[np.isfinite(x) & (x > 0)]
        if x.size == 0:
            continue
        name = stat or "median"
        value = {"min": np.min, "median": np.median, "mean": np.mean}[name](x)
        out[s.id] = (name, float(value))
    return out


def _default(obj: Any) -> Any:
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):
        return to_json()
    if hasattr(obj, "item"):  # NumPy scalars
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def build_document(
    measurements: list[dict[str, Any]], *, root: Path, session: dict[str, Any]
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "session": session,
        "machine": fingerprint(),
        "commit": commit_info(root),
        "measurements": json.loads(json.dumps(measurements, default=_default)),
    }


def write_atomic(path: Path, text: str | bytes, *, exclusive: bool = False) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a mix.

    The data goes to a temporary file in the same directory, is flushed to disk, and only
    then renamed over `path` (atomic on POSIX): a run killed mid-write leaves the old file.
    With `exclusive`, an existing `path` is never replaced: `FileExistsError` instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            # A hard link is created atomically and only if the name is free, so two
            # sessions can never clobber each other's file, and no reader sees it half-done.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise
            except OSError:  # no hard links on this file system: reserve the name instead
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _json_safe(obj: Any) -> Any:
    """`obj` with every non-finite float as None: JSON has no NaN or Infinity.

    What can legitimately be non-finite in a document is a derived number, e.g. the bound of
    an interval with too few rounds to bound it; `null` is how such a number is written
    (as `perfsuite ab` and the asv export already do). Measured values never are: they are
    refused where they enter (`perf.record`) and by `validate_document`.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if obj is None or isinstance(obj, (str, int)):
        return obj
    return _json_safe(_default(obj))


def dumps_document(document: dict[str, Any]) -> str:
    """The document as strict JSON text (what every other tool can parse)."""
    try:
        return json.dumps(_json_safe(document), indent=1, allow_nan=False) + "\n"
    except ValueError as exc:  # cannot happen after _json_safe; never write non-JSON anyway
        raise ValueError(f"results document is not valid JSON: {exc}") from None


def write_json(path: Path, document: dict[str, Any], *, exclusive: bool = False) -> None:
    write_atomic(path, dumps_document(document), exclusive=exclusive)


def ensure_results_dir(path: Path) -> Path:
    """Create the results directory with a `.gitignore` of `*` (results are not sources)."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Created by perfsuite: results are machine-specific.\n*\n")
    return path


def load_document(path: Path) -> dict[str, Any]:
    """Read a results document, refusing anything that is not ours or not this version."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such results file.") from None
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: not a readable JSON results file ({exc}).") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise SchemaError(f"{path}: not a perfsuite results file (missing schema {SCHEMA!r}).")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: schema version {doc.get('schema_version')!r}; this perfsuite reads "
            f"version {SCHEMA_VERSION}."
        )
    validate_document(doc, path)
    return doc


# --------------------------------------------------------------------------- schema check
#
# One check, run by `load_document`, shared by every reader (`perfsuite report`, `export-asv`,
# the baseline loader, `perfsuite ab`): it checks exactly the keys and types those readers
# index, so a malformed file is one clean `SchemaError` naming the file, the measurement and
# the key, never a `KeyError`/`ValueError` traceback from deep inside a reader. Kinds this
# version does not know are let through (a newer perfsuite may add kinds; readers skip them).


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_samples(x: Any) -> bool:
    return isinstance(x, list) and all(_is_number(v) and math.isfinite(v) and v > 0 for v in x)


_RULES: dict[str, tuple[Any, str]] = {
    "str": (lambda x: isinstance(x, str), "a string"),
    "str?": (lambda x: x is None or isinstance(x, str), "a string or null"),
    "int": (lambda x: isinstance(x, int) and not isinstance(x, bool), "an integer"),
    "int?": (
        lambda x: x is None or (isinstance(x, int) and not isinstance(x, bool)),
        "an integer or null",
    ),  # fmt: skip
    # Derived numbers (estimates, interval bounds) may be null: unbounded or undefined.
    "num?": (lambda x: x is None or _is_number(x), "a number or null"),
    "num": (lambda x: _is_number(x) and math.isfinite(x), "a finite number"),
    "samples": (_is_samples, "a list of finite positive numbers (seconds)"),
    "nums": (lambda x: isinstance(x, list) and all(_is_number(v) for v in x), "a list of numbers"),
    "nums?": (
        lambda x: x is None or (isinstance(x, list) and all(_is_number(v) for v in x)),
        "a list of numbers or null",
    ),  # fmt: skip
    "dict": (lambda x: isinstance(x, dict), "an object"),
    "bool": (lambda x: isinstance(x, bool), "true or false"),
    "dict?": (lambda x: x is None or isinstance(x, dict), "an object or null"),
    "list": (lambda x: isinstance(x, list), "a list"),
}

#: Per known kind: `(dotted key, rule, required)`. Optional keys are checked when present.
_KIND_KEYS: dict[str, list[tuple[str, str, bool]]] = {
    "measure": [
        ("candidate", "dict", True),
        ("candidate.samples_s", "samples", True),
        ("candidate.stats", "dict", False),
        ("candidate.stats.median", "num?", False),
        ("candidate.stats.min", "num?", False),
        ("candidate.stats.rounds", "int", False),
        ("candidate.first_call_s", "num?", False),
        ("candidate.retraces", "int", False),
        ("candidate.iterations_per_round", "int?", False),
        ("candidate.cpu_share", "num?", False),
        ("candidate.counts", "dict", False),
        ("candidate.counts.values", "dict", False),
        ("per_unit_s", "num?", False),
        ("unit", "str?", False),
    ],
    "steps": [
        ("steps", "dict", True),
        ("steps.samples_s", "samples", True),
        ("steps.stats", "dict", True),
        ("steps.stats.median", "num?", True),
        ("steps.stats.min", "num?", True),
        ("steps.stats.steps_per_s", "num?", True),
        ("steps.stats.rounds", "int", True),
        ("steps.first_step_s", "num?", True),
        ("steps.retraces", "int", True),
        ("steps.cpu_share", "num?", False),
        ("steps.counts", "dict", False),
        ("steps.counts.values", "dict", False),
    ],
    "compare": [
        ("comparison", "dict", True),
        ("comparison.candidates", "list", True),
        ("comparison.verdicts", "list", True),
    ],
    "scaling": [
        ("verdict", "str", True),
        ("scaling", "dict", True),
        ("scaling.law", "str", True),
        ("scaling.sizes", "nums", True),
        ("scaling.median_s", "nums", True),
        ("scaling.per_unit_s", "nums?", True),
        ("scaling.rounds", "int", True),
        ("scaling.slope", "num?", True),
        ("scaling.low", "num?", True),
        ("scaling.high", "num?", True),
        ("scaling.expected", "num?", True),
        ("scaling.tolerance", "num", True),
        ("scaling.level", "num", False),
        ("scaling.unit", "str?", False),
        ("scaling.metric", "str", False),
    ],
    "record": [("value", "num", True), ("unit", "str", True)],
    "memory": [("memory", "dict", True)],
    "counts": [("counts", "dict", True), ("counts.values", "dict", True)],
}

#: A `MemoryStats` dict (`perfsuite._memory`), wherever an entry carries `memory`.
_MEMORY_KEYS = [
    ("peak_bytes", "int", True),
    ("retained_bytes", "int", True),
    ("source", "str", True),
    ("exact", "bool", True),
    ("extra", "dict", False),
]

_CANDIDATE_KEYS = [
    ("name", "str", True),
    ("samples_s", "samples", True),
    ("stats", "dict", False),
    ("stats.median", "num?", False),
    ("stats.min", "num?", False),
    ("stats.rounds", "int", False),
    ("first_call_s", "num?", False),
    ("retraces", "int", False),
    ("iterations_per_round", "int?", False),
    ("cpu_share", "num?", False),
    ("counts", "dict", False),
    ("counts.values", "dict", False),
]

_VERDICT_KEYS = [
    ("assertion", "str", True),
    ("verdict", "str", True),
    ("rule", "str", True),
    ("ratio", "dict", True),
    ("ratio.a", "str", True),
    ("ratio.b", "str", True),
    ("ratio.estimate", "num?", True),
    ("ratio.low", "num?", True),
    ("ratio.high", "num?", True),
    ("ratio.rounds", "int", True),
]

_PROFILE_KEYS = [
    ("a", "str", True),
    ("b", "str?", False),
    ("folder", "str", True),
    ("artifacts", "dict", False),
    ("diffs", "dict", False),
    ("top", "dict", False),
]

#: The machine-speed reference a timed measurement may carry (`perfsuite._reference`).
_REFERENCE_KEYS: list[tuple[str, str, bool]] = [
    ("reference", "dict", False),
    ("reference.kernel", "str", False),
    ("reference.samples_s", "samples", False),
    ("reference.cpu_share", "num?", False),
]

_MISSING = object()


def _check(obj: dict[str, Any], keys: list[tuple[str, str, bool]], where: str) -> None:
    for dotted, rule, required in keys:
        value: Any = obj
        for part in dotted.split("."):
            value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
        if value is _MISSING:
            if required:
                raise SchemaError(f"{where}: `{dotted}` is missing.")
            continue
        ok, what = _RULES[rule]
        if not ok(value):
            shown = repr(value)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise SchemaError(f"{where}: `{dotted}` must be {what}, got {shown}.")


def _check_memory(entry: Any, where: str) -> None:
    if isinstance(entry, dict) and "memory" in entry:
        if not isinstance(entry["memory"], dict):
            raise SchemaError(f"{where}: `memory` must be an object.")
        _check(entry["memory"], _MEMORY_KEYS, f"{where}: `memory`")


def validate_document(doc: dict[str, Any], path: Any = "results") -> None:
    """Raise `SchemaError` unless every measurement has what the readers of `doc` index."""
    measurements = doc.get("measurements")
    if not isinstance(measurements, list):
        raise SchemaError(f"{path}: `measurements` must be a list.")
    bad = f"{path}: corrupted results file:"
    _check(doc, [("created", "str", True), ("machine", "dict", False)], bad[:-1])
    _check(doc, [("machine.id", "str", False)], bad[:-1])
    _check(doc, [("commit", "dict?", False), ("session", "dict", False)], bad[:-1])
    for i, m in enumerate(measurements):
        if not isinstance(m, dict):
            raise SchemaError(f"{bad} measurement {i} must be an object, got {m!r:.80}.")
        label = m.get("id") if isinstance(m.get("id"), str) else f"#{i}"
        where = f"{bad} measurement {label}"
        _check(m, [(key, "str", True) for key in ("kind", "id", "test", "name")], where)
        kind = m["kind"]
        _check(m, _KIND_KEYS.get(kind, []), f"{where} (kind {kind!r})")
        _check(m, _REFERENCE_KEYS, where)
        if kind == "compare":
            for j, cand in enumerate(m["comparison"]["candidates"]):
                if not isinstance(cand, dict):
                    raise SchemaError(f"{where}: `comparison.candidates[{j}]` must be an object.")
                _check(cand, _CANDIDATE_KEYS, f"{where}: `comparison.candidates[{j}]`")
                _check_memory(cand, f"{where}: `comparison.candidates[{j}]`")
            for j, verdict in enumerate(m["comparison"]["verdicts"]):
                if not isinstance(verdict, dict):
                    raise SchemaError(f"{where}: `comparison.verdicts[{j}]` must be an object.")
                _check(verdict, _VERDICT_KEYS, f"{where}: `comparison.verdicts[{j}]`")
        elif kind in ("measure", "steps", "memory"):
            entry = {"measure": m.get("candidate"), "steps": m.get("steps"), "memory": m}[kind]
            _check_memory(entry, f"{where} (kind {kind!r})")
        elif kind == "scaling":
            f = m["scaling"]
            n = len(f["sizes"])
            for key in ("median_s", "per_unit_s"):
                if f[key] is not None and len(f[key]) != n:
                    raise SchemaError(
                        f"{where}: `scaling.{key}` must have one value per size ({n}), "
                        f"got {len(f[key])}."
                    )
        # Profiles (issue 16): a list of objects with the keys `iter_profiles` reads.
        profiles = m.get("profiles", [])
        if not (isinstance(profiles, list) and all(isinstance(p, dict) for p in profiles)):
            raise SchemaError(f"{where}: `profiles` must be a list of objects.")
        for j, prof in enumerate(profiles):
            _check(prof, _PROFILE_KEYS, f"{where}: `profiles[{j}]`")
        # Baseline verdicts (written by the gate) are read as lists of objects.
        if "baselines" in m and not (
            isinstance(m["baselines"], list) and all(isinstance(b, dict) for b in m["baselines"])
        ):
            raise SchemaError(f"{where}: `baselines` must be a list of objects.")
        if "baseline" in m and not isinstance(m["baseline"], dict):
            raise SchemaError(f"{where}: `baseline` must be an object.")
