"""pytest-benchmark's statistics of a benchmark and its `--benchmark-json` document.

`BenchmarkStats` is what `benchmark.stats` holds after a measurement and what each entry of
the JSON file carries, computed as pytest-benchmark computes it (its quartiles, outliers and
`ops`), so that tools reading pytest-benchmark's JSON read perfsuite's measurements alike.
"""

from __future__ import annotations

import bisect
import math
import statistics
from pathlib import Path
from typing import Any

from ._errors import PerfKeyError, PerfUsageError


class BenchmarkStats:
    """pytest-benchmark's statistics of one benchmark (`benchmark.stats`, and its JSON):
    per-call seconds of each round, with its quartiles as pytest-benchmark computes them."""

    fields = (
        "min",
        "max",
        "mean",
        "stddev",
        "rounds",
        "median",
        "iqr",
        "q1",
        "q3",
        "iqr_outliers",
        "stddev_outliers",
        "outliers",
        "ld15iqr",
        "hd15iqr",
        "ops",
        "total",
    )

    def __init__(self, data: list[float], iterations: int):
        if not data:
            raise PerfUsageError("a benchmark's statistics need at least one round.")
        self.data = list(data)
        self.iterations = iterations
        d = sorted(self.data)
        n = len(d)
        self.rounds = n
        self.min, self.max = d[0], d[-1]
        self.total = math.fsum(d)
        self.mean = statistics.fmean(d)
        self.stddev = statistics.stdev(d) if n > 1 else 0.0
        self.median = statistics.median(d)
        self.q1, self.q3 = _quartiles(d)
        self.iqr = self.q3 - self.q1
        lo, hi = self.q1 - 1.5 * self.iqr, self.q3 + 1.5 * self.iqr
        self.iqr_outliers = sum(1 for v in d if v < lo or v > hi)
        self.stddev_outliers = sum(
            1 for v in d if v < self.mean - self.stddev or v > self.mean + self.stddev
        )
        self.outliers = f"{self.stddev_outliers};{self.iqr_outliers}"
        self.ld15iqr = d[0] if n == 1 else d[bisect.bisect_left(d, lo)]
        self.hd15iqr = d[0] if n == 1 else d[bisect.bisect_right(d, hi) - 1]
        self.ops = n / self.total if self.total else 0

    @property
    def stats(self) -> BenchmarkStats:
        # pytest-benchmark's `benchmark.stats.stats.mean` reads through its metadata object.
        return self

    def __getitem__(self, key: str) -> Any:
        if key not in self.fields and key != "iterations":
            raise PerfKeyError(f"{key!r} is not a benchmark statistic; known: {list(self.fields)}.")
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        return {**{f: getattr(self, f) for f in self.fields}, "iterations": self.iterations}


def _quartiles(d: list[float]) -> tuple[float, float]:
    """Q1 and Q3 as pytest-benchmark computes them (Wikipedia's methods 3 and 2)."""
    n = len(d)
    if n == 1:
        return d[0], d[0]
    if n % 2:
        k, q = n // 4, n % 4
        if q == 1:
            return 0.25 * d[k - 1] + 0.75 * d[k], 0.75 * d[3 * k] + 0.25 * d[3 * k + 1]
        return 0.75 * d[k] + 0.25 * d[k + 1], 0.25 * d[3 * k + 1] + 0.75 * d[3 * k + 2]
    return statistics.median(d[: n // 2]), statistics.median(d[n // 2 :])


def pytest_benchmark_document(measurements: list[dict[str, Any]], root: Path) -> dict[str, Any]:
    """The `benchmark` fixture's measurements as pytest-benchmark's `--benchmark-json` writes
    them (`machine_info`, `commit_info`, `benchmarks` with `stats` and their `data`)."""
    import datetime as _dt

    from . import __version__
    from ._machine import commit_info, fingerprint
    from ._results import _json_safe

    benchmarks = []
    for m in measurements:
        info = m.get("benchmark")
        if m.get("kind") != "measure" or not isinstance(info, dict):
            continue
        cand = m["candidate"]
        stats = BenchmarkStats(cand["samples_s"], cand["iterations_per_round"]).as_dict()
        benchmarks.append(
            {
                "group": info["group"],
                "name": info["name"],
                "fullname": info["fullname"],
                "params": info["params"],
                "param": info["param"],
                "extra_info": info["extra_info"],
                "options": {
                    "timer": "perf_counter",
                    "instrument": cand["instrument"]["name"],
                    "statistic": cand["statistic"],
                    "mode": info["mode"],
                    **(info.get("pedantic") or {}),
                },
                "stats": {**stats, "data": list(cand["samples_s"])},
                "perfsuite": {"id": m["id"], "first_call_s": cand["first_call_s"]},
            }
        )
    return _json_safe(
        {
            "machine_info": fingerprint(),
            "commit_info": commit_info(root),
            "benchmarks": benchmarks,
            "datetime": _dt.datetime.now(_dt.UTC).isoformat(),
            "version": f"perfsuite {__version__}",
        }
    )
