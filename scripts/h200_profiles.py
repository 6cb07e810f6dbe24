"""One example of each profile artifact of issue 16, from deliberately regressed pairs, on a GPU.

Run from the tree (no install), on the H200:

    PYTHONPATH=src:.:.gpu-site python scripts/h200_profiles.py [--out DIR]

Three pairs, each measured side by side with `perfsuite.compare` (quick settings), its
verdict taken (`assert_no_slower`, expected to fail), then both sides profiled by
`perfsuite._profile.profile_pair`, exactly as the plugin does after a failed assertion:

- host: a Python loop that also calls a deliberately slow helper -> the host diff;
- JAX (GPU): a jitted step with one extra (4096^2) matmul -> trace + device op table + diff;
- torch (CUDA): a step with one extra `torch.sort` -> trace + key_averages table + ops diff.

Prints a Markdown table: pair, ratio and verdict, the top line of each diff, the artifacts
and their sizes; exits 1 if a diff does not name the planted change first. Takes well under
3 minutes (each comparison is capped at 5 s of rounds, profiling at 200 calls a side).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size if path.exists() else 0


def _run_pair(label, fns, slow, fast, folder, planted, rows, problems):
    from perfsuite import PerfFailure, Settings, compare
    from perfsuite._profile import profile_pair

    settings = Settings.quick()
    cmp = compare(settings=settings, **fns)
    try:
        cmp.assert_no_slower(slow, than=fast, tolerance=0.05)
        verdict = "pass (unexpected)"
    except PerfFailure:
        verdict = "fail"
    r = cmp.ratio(fast, over=slow)
    started = time.perf_counter()
    result = profile_pair(cmp.candidates, slow, fast, folder / label)
    seconds = time.perf_counter() - started
    for kind, top in result.top.items():
        first = top[0] if top else "(empty)"
        files = [Path(p) for p in result.artifacts.get(kind, [])] + [Path(result.diffs[kind])]
        sizes = ", ".join(f"{f.name} {_size(f) / 1024:.0f} kB" for f in files)
        rows.append(
            (label, f"{r.estimate:.2f}x [{r.low:.2f}, {r.high:.2f}] {verdict}", kind,
             first, sizes, f"{seconds:.1f}")
        )  # fmt: skip
        if kind in planted and planted[kind] not in first:
            problems.append(f"{label}/{kind}: expected {planted[kind]!r} first, got {first!r}")
    for kind in planted:
        if kind not in result.top:
            problems.append(f"{label}: no {kind} diff (errors: {result.errors})")
    problems.extend(f"{label}: {e}" for e in result.errors)


def deliberately_slow() -> int:
    total = 0
    for i in range(20_000):
        total += i * i
    return total


def cheap() -> int:
    return sum(range(100))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".perf/profiles/h200"))
    args = parser.parse_args()
    started = time.perf_counter()
    rows: list[tuple[str, ...]] = []
    problems: list[str] = []

    _run_pair(
        "host",
        {"slow": lambda: (cheap(), deliberately_slow()), "fast": cheap},
        "slow", "fast", args.out,
        {"host": "deliberately_slow"}, rows, problems,
    )  # fmt: skip

    if importlib.util.find_spec("jax") is not None:
        import jax
        import jax.numpy as jnp

        backend = jax.default_backend()
        side = 4096 if backend == "gpu" else 256  # a CPU run (to try the script) stays short
        x = jnp.ones((side, side), jnp.float32)
        one = jax.jit(lambda x: jnp.tanh(x @ x))
        two = jax.jit(lambda x: jnp.tanh((x @ x) @ x))  # one extra matmul per call
        _run_pair(
            f"jax-{backend}",
            {"extra_matmul": lambda: two(x), "base": lambda: one(x)},
            "extra_matmul", "base", args.out, {"jax": ""}, rows, problems,
        )  # fmt: skip
    else:
        problems.append("jax is not importable: no JAX example")

    if importlib.util.find_spec("torch") is not None:
        import torch

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        t = torch.randn(1 << (22 if dev == "cuda" else 16), device=dev)
        _run_pair(
            f"torch-{dev}",
            {"extra_sort": lambda: torch.sort(t * 2.0).values, "base": lambda: t * 2.0},
            "extra_sort", "base", args.out, {"torch": "sort"}, rows, problems,
        )  # fmt: skip
    else:
        problems.append("torch is not importable: no torch example")

    print(f"## perfsuite profiles on failure ({time.perf_counter() - started:.0f} s)\n")
    print(
        "| pair | fast/slow speedup (99% CI), verdict | profiler | top diff line | artifacts | profiling s |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    print(f"\nartifacts under {args.out.resolve()}")
    for p in problems:
        print(f"- PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
