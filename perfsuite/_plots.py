"""PNG plots for `perfsuite report`: scaling fits (log-log) and per-step time histograms.

Drawn with matplotlib's object API on the Agg canvas (no `pyplot`, no global backend
switch, nothing shown), and written atomically next to the results they come from.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ._results import iter_series, write_atomic


def _slug(text: str) -> str:
    """A file-name-safe, collision-free short name for a measurement id."""
    base = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[-60:]
    return f"{base}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    write_atomic(path, buf.getvalue())
    return path


def plot_scaling(m: dict[str, Any], path: Path) -> Path:
    """Time (or time per unit) against size on log-log axes, with the fitted power law."""
    from matplotlib.figure import Figure

    f = m["scaling"]
    xs = [float(x) for x in f["sizes"]]
    ys = [float(y) for y in f["median_s"]]
    fig = Figure(figsize=(6, 4.2))
    ax = fig.add_subplot()
    ax.loglog(xs, ys, "o", label="median per size")
    # The fitted law through the geometric centre of the points: t = c * n^slope.
    lx = sum(math.log(x) for x in xs) / len(xs)
    ly = sum(math.log(y) for y in ys) / len(ys)
    grid = [min(xs) * (max(xs) / min(xs)) ** (i / 50) for i in range(51)]

    def line(slope: float) -> list[float]:
        return [math.exp(ly + slope * (math.log(x) - lx)) for x in grid]

    ax.loglog(grid, line(f["slope"]), "-", label=f"fit: slope {f['slope']:.2f}")
    # An unbounded interval is null in the file (JSON has no infinity).
    if f["low"] is not None and f["high"] is not None and math.isfinite(f["low"] + f["high"]):
        ax.fill_between(grid, line(f["low"]), line(f["high"]), alpha=0.2,
                        label=f"{f['level']:.0%} CI [{f['low']:.2f}, {f['high']:.2f}]")  # fmt: skip
    ax.loglog(grid, line(f["expected"]), "--", color="grey",
              label=f"`{f['law']}`: slope {f['expected']:.2f}")  # fmt: skip
    ax.set_xlabel(f"size ({f.get('unit') or 'n'})")
    ax.set_ylabel("seconds per call")
    ax.set_title(f"{m['id']}\n{m.get('verdict', '')}", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_steps(m: dict[str, Any], path: Path) -> Path:
    """Histogram of steady-state step times, the median marked, the first step in the title."""
    from matplotlib.figure import Figure

    s = m["steps"]
    ms = [x * 1e3 for x in s["samples_s"]]
    fig = Figure(figsize=(6, 4.2))
    ax = fig.add_subplot()
    # One stalled step (a GC pause, a neighbour's job) would squash the histogram into one
    # bar: far outliers are counted in the legend instead of stretching the axis.
    cut = float(np.percentile(ms, 95)) * 3
    shown = [x for x in ms if x <= cut]
    off = len(ms) - len(shown)
    label = f"{off} steps > {cut:.3g} ms off-scale (max {max(ms):.3g} ms)" if off else None
    ax.hist(shown, bins=min(40, max(5, len(shown) // 3)), label=label)
    median = s["stats"]["median"] * 1e3
    ax.axvline(median, color="black", linestyle="--", label=f"median {median:.3g} ms")
    # The mean is what a training run pays per step (stalls included): shown beside it.
    mean = float(np.mean(ms))
    ax.axvline(mean, color="tab:red", linestyle=":", label=f"mean {mean:.3g} ms")
    ax.set_xlabel("step time (ms)")
    ax.set_ylabel("steps")
    ax.set_title(
        f"{m['id']}\n{len(ms)} steps, first step {s['first_step_s'] * 1e3:.3g} ms, "
        f"{s['retraces']} retraces",
        fontsize=8,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def write_plots(doc: dict[str, Any], folder: Path, *, stem: str) -> dict[str, list[Path]]:
    """Every plot the document supports, as `{measurement id: [png paths]}`."""
    out: dict[str, list[Path]] = {}
    for s in iter_series(doc):
        m = s.measurement
        if s.kind == "scaling" and len(s.entry.get("sizes", [])) >= 2:
            path = folder / f"{stem}-{_slug(m['id'])}-scaling.png"
            out.setdefault(m["id"], []).append(plot_scaling(m, path))
        elif s.kind == "steps" and s.samples:
            path = folder / f"{stem}-{_slug(m['id'])}-steps.png"
            out.setdefault(m["id"], []).append(plot_steps(m, path))
    return out
