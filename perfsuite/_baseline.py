"""Stored baselines: `--perf-save`, `--perf-compare`, `--perf-fail`.

A baseline is a results document saved under `.perf/<machine-id>/NNNN_<name>.json`. Each
timed series of the current run is compared with the baseline's series of the same id.
The two come from different processes, so rounds cannot be paired: the shift between the
two sets of log-times is estimated with Hodges-Lehmann and its distribution-free interval
(Mann-Whitney), and only a slowdown whose *lower* bound exceeds the `--perf-fail` limit
fails the session. A point estimate over the limit with an interval that reaches below it
is reported as inconclusive, never as a regression.

Limitation, stated in every failure message: a baseline and a run are one process each, so
the interval reflects round-to-round noise only. On a shared machine whole processes of
identical code differ by a few percent (more under load), which no single pair of processes
can estimate; `perfsuite ab` replicates processes and is the gate to trust on such machines.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from ._results import (
    MACHINE_KEYS,
    SchemaError,
    load_document,
    machine_fingerprint,
    series,
    write_json,
)
from ._stats import normal_quantile


if TYPE_CHECKING:
    from ._session import PerfSession


def shift_interval(
    current: list[float], base: list[float], *, level: float
) -> tuple[float, float, float]:
    """Slowdown `current / base` (ratio of typical times) with a two-sided interval.

    Hodges-Lehmann estimate of the shift of log-times, with the Mann-Whitney interval: the
    order statistics `k+1` and `nm-k` of all pairwise differences.
    """
    x = np.log(np.asarray(current, dtype=float))
    y = np.log(np.asarray(base, dtype=float))
    n, m = x.size, y.size
    if n == 0 or m == 0:
        return math.nan, -math.inf, math.inf
    diffs = np.sort((x[:, None] - y[None, :]).ravel())
    z = normal_quantile(0.5 + level / 2.0)
    k = int(math.floor(n * m / 2.0 - z * math.sqrt(n * m * (n + m + 1) / 12.0)))
    mid = float(np.median(diffs))
    if k < 0:
        return math.exp(mid), 0.0, math.inf
    return math.exp(mid), math.exp(diffs[k]), math.exp(diffs[n * m - k - 1])


def _machine_dir(results_dir: Path, machine: str) -> Path:
    return results_dir / machine


_SAVED = re.compile(r"^(\d{4})_(.+)\.json$")


def find_saved(results_dir: Path, name: str, machine: str) -> Path | None:
    """The newest baseline saved as `name` for `machine`, if any."""
    folder = _machine_dir(results_dir, machine)
    hits = sorted(
        (p for p in folder.glob("*.json") if (m := _SAVED.match(p.name)) and m[2] == name),
        key=lambda p: p.name,
    )
    return hits[-1] if hits else None


def _resolve(session: PerfSession) -> Path:
    cfg = session.perf_config
    ref = cfg.compare
    assert ref is not None
    as_path = Path(ref)
    if not as_path.is_absolute():
        as_path = Path(session.config.invocation_params.dir) / as_path
    if ref.endswith(".json") or as_path.is_file():
        return as_path
    machine = machine_fingerprint()["id"]
    found = find_saved(cfg.results_dir, ref, machine)
    if found is not None:
        return found
    elsewhere = sorted(
        p
        for p in cfg.results_dir.glob(f"*/[0-9][0-9][0-9][0-9]_{ref}.json")
        if p.parent.name != machine
    )
    if elsewhere and cfg.allow_cross_machine:
        return elsewhere[-1]
    if elsewhere:
        try:
            what = _differences(load_document(elsewhere[-1]).get("machine", {}))
        except SchemaError as exc:
            what = f"and it is unreadable: {exc}"
        raise pytest.UsageError(
            f"--perf-compare={ref}: no baseline {ref!r} for this machine ({machine}); the one "
            f"found was saved on another machine ({elsewhere[-1]}); {what}. "
            "Pass --perf-allow-cross-machine to compare anyway."
        )
    raise pytest.UsageError(
        f"--perf-compare={ref}: no baseline named {ref!r} for this machine ({machine}) under "
        f"{cfg.results_dir}, and no such file. Save one with --perf-save={ref}."
    )


def _differences(other: dict[str, Any]) -> str:
    mine = machine_fingerprint()
    diffs = [
        f"{key}: baseline {other.get(key)!r} vs here {mine.get(key)!r}"
        for key in MACHINE_KEYS
        if other.get(key) != mine.get(key)
    ]
    return "; ".join(diffs) or "machine ids differ"


def check_early(session: PerfSession) -> None:
    """Load and vet the baseline at configure time, before anything is measured."""
    cfg = session.perf_config
    session.baseline = None
    session.baseline_path = None
    if cfg.compare is None:
        return
    path = _resolve(session)
    try:
        doc = load_document(path)
        series(doc)  # every measurement must carry its samples
    except SchemaError as exc:
        raise pytest.UsageError(
            f"--perf-compare={cfg.compare}: {exc} The baseline is left as it is; save a new "
            "one with --perf-save=NAME."
        ) from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise pytest.UsageError(
            f"--perf-compare={cfg.compare}: {path}: corrupted results file (a measurement "
            f"lacks {exc}). The baseline is left as it is; save a new one with --perf-save=NAME."
        ) from None
    here = machine_fingerprint()
    if doc.get("machine", {}).get("id") != here["id"] and not cfg.allow_cross_machine:
        raise pytest.UsageError(
            f"--perf-compare={cfg.compare}: {path} was recorded on another machine; "
            f"{_differences(doc.get('machine', {}))}. Pass --perf-allow-cross-machine to compare anyway."
        )
    session.baseline = doc
    session.baseline_path = path


def apply(session: PerfSession) -> None:
    """Attach a baseline verdict to every measurement that has a series in the baseline."""
    doc = session.baseline
    if doc is None:
        return
    cfg = session.perf_config
    limit = 1.0 + (cfg.fail.fraction if cfg.fail else 0.05)
    base = series(doc)
    current = series(session.document)
    regressions = []
    for m in session.document["measurements"]:
        ids = _series_ids(m)
        for sid in ids:
            if sid not in base or sid not in current:
                continue
            ratio, low, high = shift_interval(current[sid], base[sid], level=0.99)
            if low > limit:
                verdict = "regression"
            elif high < 1 / limit:
                verdict = "improvement"
            elif high <= limit and low >= 1 / limit:
                verdict = "same"
            else:
                verdict = "inconclusive"
            entry = {
                "name": cfg.compare,
                "series": sid,
                "ratio": ratio,
                "low": low,
                "high": high,
                "rounds": len(current[sid]),
                "baseline_rounds": len(base[sid]),
                "limit": limit,
                "verdict": verdict,
            }
            m.setdefault("baselines", []).append(entry)
            if len(ids) == 1:
                m["baseline"] = entry
            if verdict == "regression":
                regressions.append(entry)
    session.document["baseline"] = {
        "path": str(session.baseline_path),
        "commit": doc.get("commit"),
        # Series on one side only: nothing to compare, listed so that a rename is visible.
        "only_in_baseline": sorted(set(base) - set(current)),
        "only_in_current": sorted(set(current) - set(base)),
    }
    session.measurements = session.document["measurements"]
    if cfg.fail is not None:
        for e in regressions:
            session.errors.append(
                f"REGRESSION {e['series']}: {e['ratio']:.3g}x the baseline's time "
                f"(99% CI {e['low']:.3g}x..{e['high']:.3g}x, {e['rounds']} vs {e['baseline_rounds']} "
                f"rounds); --perf-fail={cfg.fail} allows at most {e['limit']:.3g}x. The interval "
                "is over rounds of one process on each side, so it cannot see how much whole "
                "processes differ; confirm with `perfsuite ab`, which replicates processes."
            )


def _series_ids(m: dict[str, Any]) -> list[str]:
    if m["kind"] in ("measure", "steps"):
        return [m["id"]]
    if m["kind"] == "compare":
        return [f"{m['test']}::{c['name']}" for c in m["comparison"]["candidates"]]
    return []


def save_if_asked(session: PerfSession) -> None:
    cfg = session.perf_config
    if cfg.save is None or session.document is None:
        return
    machine = session.document["machine"]["id"]
    folder = _machine_dir(cfg.results_dir, machine)
    folder.mkdir(parents=True, exist_ok=True)
    numbers = [int(m[1]) for p in folder.glob("*.json") if (m := _SAVED.match(p.name))]
    path = folder / f"{max(numbers, default=0) + 1:04d}_{cfg.save}.json"
    write_json(path, session.document)
    session.saved_path = path
