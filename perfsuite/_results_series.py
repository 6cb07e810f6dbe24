"""The series of a results document: the one model every reader goes through.

A results document holds measurements of several kinds (`measure`, `steps`, `compare`,
`scaling`, `record`, `counts`, `memory`); `measurement_series` turns each into typed
`Series` (id, kind, unit, samples, the entry it was read from), and `iter_series` does so for
a whole document. The report, the baselines, `perfsuite ab`, the asv export and the plots all
read through it (re-exported by `_results`), so a new kind of number is taught here once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


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
