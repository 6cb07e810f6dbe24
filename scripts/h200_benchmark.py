"""Issue 13 on an accelerator (written for the H200): pytest-benchmark suites under perfsuite.

Usage (on the GPU machine, project not installed; < 4 minutes):

    PYTHONPATH=src:.:.gpu-site python3 scripts/h200_benchmark.py [--json PATH]

Writes a small pytest-benchmark-style suite of GPU work (a torch CUDA matmul through
`benchmark(fn, *args)`, the same through `benchmark.pedantic` with a setup making fresh
inputs each round, and a JAX matmul) into a temporary folder and runs it with
`pytest --perf -p no:benchmark` in a subprocess, as a user's suite would run. Then, in this
process, it times the same work by hand with the device's own clock (CUDA events around 50
synchronised calls for torch, `block_until_ready` for JAX) and prints a Markdown table:

| series | instrument | perfsuite per call | by hand per call | ratio | check |

What each check means: the `benchmark` fixture must pick the instrument that waits for the
device (`torch-cuda`/`cuda-events` for a CUDA tensor, `jax` for a JAX array), and its per-call
time must agree with the by-hand time within 0.67x..1.5x (the two are different processes and
different clocks; without the device sync the fixture would time the kernel launch only,
tens of microseconds against the milliseconds of an 8192^2 matmul, far outside that band).
`pedantic` must also report exactly the rounds asked for. Exit status 0 when every check
holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path


N = 8192  # a bf16 8192^3 matmul: ~1.1 TFLOP, about 1.4 ms on an H200

SUITE = f"""
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA", allow_module_level=True)

N = {N}


@pytest.fixture(scope="module")
def mats():
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(N, N, device="cuda", dtype=torch.bfloat16, generator=g)
    b = torch.randn(N, N, device="cuda", dtype=torch.bfloat16, generator=g)
    return a, b


def test_torch_matmul(benchmark, mats):
    out = benchmark(torch.matmul, *mats)
    benchmark.extra_info["n"] = N
    assert out.shape == (N, N)


@pytest.mark.benchmark(group="pedantic")
def test_torch_matmul_pedantic(benchmark):
    def setup():
        a = torch.randn(N, N, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(N, N, device="cuda", dtype=torch.bfloat16)
        return (a, b), {{}}

    out = benchmark.pedantic(torch.matmul, setup=setup, rounds=12, warmup_rounds=2)
    assert out.shape == (N, N)


def test_jax_matmul(benchmark):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    if jax.default_backend() != "gpu":
        pytest.skip("JAX has no GPU backend here")
    k = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(k[0], (N, N), dtype=jnp.bfloat16)
    b = jax.random.normal(k[1], (N, N), dtype=jnp.bfloat16)
    f = jax.jit(jnp.matmul)
    out = benchmark(f, a, b)
    assert out.shape == (N, N)
"""


def run_suite(folder: Path) -> tuple[dict, str, float]:
    (folder / "test_gpu_bench.py").write_text(textwrap.dedent(SUITE))
    results = folder / "results.json"
    env = dict(os.environ)
    # The tree's perfsuite and trainfast (and .gpu-site's torch/jax): as the usage line says.
    root = Path(__file__).resolve().parents[1]
    extra = [str(root), str(root / "src"), str(root / ".gpu-site")]
    env["PYTHONPATH"] = os.pathsep.join([*extra, env.get("PYTHONPATH", "")])
    # torch and JAX share the GPU in one process: JAX must not take 75% of it up front.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--perf",
        "--perf-quick",
        "-p",
        "no:benchmark",
        "-p",
        "no:cacheprovider",
        *plugin_arg(),
        f"--perf-json={results}",
        f"--benchmark-json={folder / 'bench.json'}",
        "-q",
        str(folder),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=180)
    wall = time.perf_counter() - t0
    print(proc.stdout[-4000:], file=sys.stderr)
    print(proc.stderr[-2000:], file=sys.stderr)
    doc = json.loads(results.read_text()) if results.exists() else {"measurements": []}
    return doc, f"pytest exit {proc.returncode}", wall


def plugin_arg() -> list[str]:
    """`-p perfsuite.plugin` where perfsuite is not installed (no pytest11 entry point)."""
    from importlib.metadata import entry_points

    if any(ep.value == "perfsuite.plugin" for ep in entry_points(group="pytest11")):
        return []
    return ["-p", "perfsuite.plugin"]


def by_hand_torch() -> float:
    import torch

    a = torch.randn(N, N, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(N, N, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(50):
        start.record()
        torch.matmul(a, b)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    return times[len(times) // 2]


def by_hand_jax() -> float | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    if jax.default_backend() != "gpu":
        return None
    a = jnp.ones((N, N), dtype=jnp.bfloat16)
    f = jax.jit(jnp.matmul)
    f(a, a).block_until_ready()
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        f(a, a).block_until_ready()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # as in the suite's run
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: this script is for the GPU machine", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        doc, status, wall = run_suite(Path(tmp))
        bench = Path(tmp, "bench.json")
        bench_entries = len(json.loads(bench.read_text())["benchmarks"]) if bench.exists() else 0
    by_id = {m["id"]: m for m in doc["measurements"]}
    hand_torch = by_hand_torch()
    hand_jax = by_hand_jax()
    rows, ok = [], True
    checks = [
        ("test_torch_matmul", hand_torch, {"torch-cuda", "cuda-events"}, None),
        ("test_torch_matmul_pedantic", hand_torch, {"torch-cuda", "cuda-events"}, 12),
        ("test_jax_matmul", hand_jax, {"jax"}, None),
    ]
    for test, hand, instruments, rounds in checks:
        m = by_id.get(f"test_gpu_bench.py::{test}::benchmark")
        if m is None:
            skipped = hand is None
            rows.append(
                (test, "-", "-", "-", "-", "skipped (no backend)" if skipped else "MISSING")
            )
            ok = ok and skipped
            continue
        c = m["candidate"]
        per = c["per_call_s"]
        ratio = per / hand if hand else float("nan")
        good = c["instrument"]["name"] in instruments and 0.67 <= ratio <= 1.5
        if rounds is not None:
            good = good and len(c["samples_s"]) == rounds
        ok = ok and good
        rows.append(
            (
                test,
                c["instrument"]["name"],
                f"{per * 1e3:.3f} ms ({len(c['samples_s'])} rounds)",
                f"{hand * 1e3:.3f} ms" if hand else "-",
                f"{ratio:.2f}x",
                "ok" if good else "FAIL",
            )
        )
    print(f"pytest --perf on the suite: {status}, {wall:.0f} s; --benchmark-json entries: "
          f"{bench_entries}\n")  # fmt: skip
    print("| series | instrument | perfsuite per call | by hand per call | ratio | check |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "status": status}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
