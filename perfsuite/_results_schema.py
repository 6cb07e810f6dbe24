"""The schema check of a results document (`validate_document`).

One check, run by `load_document`, shared by every reader (`perfsuite report`, `export-asv`,
the baseline loader, `perfsuite ab`): it checks exactly the keys and types those readers
index, so a malformed file is one clean `SchemaError` naming the file, the measurement and
the key, never a `KeyError`/`ValueError` traceback from deep inside a reader. Kinds this
version does not know are let through (a newer perfsuite may add kinds; readers skip them).
"""

from __future__ import annotations

import math
from typing import Any

from ._errors import SchemaError


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
