"""The `Counts` of one call, and the checks on them that fail a test.

`Counts` holds the two readings of every counter (`COUNTERS` says what each counts); a
counter whose readings agree is deterministic and may be checked exactly: `check_at_most`
(`perf.counts(..., at_most=)`) and `compare_counts` (`assert_counts_no_more`). Both name the
counter, both values and the rule when they fail. A non-deterministic counter is never held
to a limit silently: asked for by name, it fails and says why.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import PerfFailure, PerfKeyError, PerfUsageError


#: Every counter: what it counts (its unit is a count of that).
COUNTERS: dict[str, str] = {
    "python_calls": "Python function calls on the host",
    "compilations": "JAX backend compilations",
    "traces": "JAX jaxpr traces",
    "torch_compiles": "graphs compiled by torch.compile",
    "xla_flops": "FLOPs by XLA's cost model",
    "xla_bytes_accessed": "bytes accessed by XLA's cost model",
    "xla_transcendentals": "transcendental ops by XLA's cost model",
    "matmul_flops": "FLOPs of the matrix products in the executed HLO (2 x out x contracted)",
    "hlo_instructions": "HLO instructions in the executed entry computations",
    "hlo_fusions": "fusions in the executed HLO modules",
    "xla_executions": "XLA executables run",
    "torch_flops": "FLOPs by torch's FlopCounterMode",
    "aten_ops": "aten ops dispatched",
    "cuda_kernels": "CUDA kernels launched (profiler)",
}
# --------------------------------------------------------------------------- Counts


@dataclass(frozen=True)
class Counts(Mapping):
    """The counts of one call (mapping-like: `counts["python_calls"]`).

    `readings` are the two readings; a key whose readings differ is in `unstable` and is
    never gated. `info` holds facts that are not counts (the dtype of the matmuls, for the
    roofline); `top_python_calls` the most called functions of the first reading.
    """

    readings: tuple[dict[str, int], ...]
    info: dict[str, Any] = field(default_factory=dict)
    top_python_calls: tuple[tuple[str, int], ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def first(self) -> dict[str, int]:
        """The first reading (what `counts[key]` reads; `values()` is the Mapping's)."""
        return dict(self.readings[0]) if self.readings else {}

    @property
    def unstable(self) -> dict[str, list[int | None]]:
        """`{counter: [reading 1, reading 2]}` for every counter whose readings differ."""
        keys = dict.fromkeys(k for r in self.readings for k in r)
        return {
            k: [r.get(k) for r in self.readings]
            for k in keys
            if len({r.get(k) for r in self.readings}) > 1
        }

    def deterministic(self, key: str) -> bool:
        return key in self and key not in self.unstable

    def __getitem__(self, key: str) -> int:
        values = self.first
        if key not in values:
            raise PerfKeyError(
                f"no counter {key!r} was measured; measured: {sorted(values)} (each counter "
                "needs its framework loaded: see perfsuite._counts.COUNTERS)."
            )
        return values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.first)

    def __len__(self) -> int:
        return len(self.first)

    def __str__(self) -> str:
        unstable = self.unstable
        parts = [
            f"{k} {v:,}" + (f" (non-deterministic: {unstable[k]})" if k in unstable else "")
            for k, v in self.first.items()
        ]
        return ", ".join(parts) or "no counters"

    def to_json(self) -> dict[str, Any]:
        return {
            "values": self.first,
            "unstable": self.unstable,
            "readings": [dict(r) for r in self.readings],
            "info": dict(self.info),
            "top_python_calls": [list(t) for t in self.top_python_calls],
            "notes": list(self.notes),
        }

    as_dict = to_json

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Counts:
        return cls(
            tuple(dict(r) for r in d.get("readings") or [d.get("values", {})]),
            dict(d.get("info", {})),
            tuple((str(n), int(c)) for n, c in d.get("top_python_calls", [])),
            tuple(d.get("notes", [])),
        )


# --------------------------------------------------------------------------- at_most


def check_at_most(counts: Counts, at_most: Mapping[str, int] | None, where: str) -> None:
    """Fail, with the numbers, when a counter exceeds its limit in `at_most`."""
    __tracebackhide__ = True
    if at_most is None:
        return
    if not isinstance(at_most, Mapping):
        raise PerfUsageError(
            f"`at_most` must be a mapping of counter to limit, e.g. "
            f"{{'python_calls': 300}}, got {at_most!r}."
        )
    problems = []
    for key, limit in at_most.items():
        if key not in COUNTERS:
            raise PerfUsageError(
                f"`at_most` names an unknown counter {key!r}; counters: {sorted(COUNTERS)}."
            )
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 0:
            raise PerfUsageError(f"`at_most[{key!r}]` must be a number >= 0, got {limit!r}.")
        if key not in counts:
            raise PerfUsageError(
                f"`at_most[{key!r}]`: {key} was not measured for {where} (measured: "
                f"{sorted(counts)}); its framework must be loaded by the call."
            )
        if key in counts.unstable:
            problems.append(
                f"{key} is non-deterministic (readings {counts.unstable[key]}), so it cannot be "
                f"held to at most {limit:,}"
            )
        elif counts[key] > limit:
            problems.append(f"{key} {counts[key]:,} > at most {limit:,} (+{counts[key] - limit:,})")
    if problems:
        top = ", ".join(f"{n} x{c}" for n, c in counts.top_python_calls[:5])
        raise PerfFailure(
            f"`counts` of {where}: "
            + "; ".join(problems)
            + f". All counts: {counts}."
            + (f" Most called: {top}." if top else "")
        )


def compare_counts(
    ca: Counts, cb: Counts, *, a: str, b: str, keys: Any = None
) -> dict[str, tuple[int, int]]:
    """`assert_counts_no_more`: `{counter: (a's, b's)}` checked; fails with the numbers."""
    __tracebackhide__ = True
    if keys is not None:
        if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
            raise PerfUsageError(f"`keys` must be a list of counter names, got {keys!r}.")
        missing = [k for k in keys if k not in ca or k not in cb]
        if missing:
            raise PerfUsageError(
                f"`keys` {missing} were not measured for both {a!r} (measured: {sorted(ca)}) "
                f"and {b!r} (measured: {sorted(cb)})."
            )
        wanted = list(keys)
    else:
        wanted = [k for k in ca if k in cb]
    checked: dict[str, tuple[int, int]] = {}
    problems = []
    for k in wanted:
        if not (ca.deterministic(k) and cb.deterministic(k)):
            if keys is not None:
                problems.append(
                    f"{k} is non-deterministic ({a}: {ca.readings and [r.get(k) for r in ca.readings]}, "
                    f"{b}: {[r.get(k) for r in cb.readings]}) and cannot be compared"
                )
            continue
        checked[k] = (ca[k], cb[k])
        if ca[k] > cb[k]:
            problems.append(f"{k}: {a} {ca[k]:,} > {b} {cb[k]:,} (+{ca[k] - cb[k]:,})")
    if problems:
        raise PerfFailure(
            f"`assert_counts_no_more({a!r}, than={b!r})`: "
            + "; ".join(problems)
            + f". Rule: every counter of {a} <= {b}'s, exactly. {a}: {ca}. {b}: {cb}."
        )
    return checked
