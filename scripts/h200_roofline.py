"""The roofline checks of issue 15 on an accelerator (written for the H200): a Markdown table.

Usage (on the GPU machine, project not installed; < 4 minutes):

    PYTHONPATH=src:.:.gpu-site python3 scripts/h200_roofline.py [--quick] [--json PATH]

Every row is measured by perfsuite's own engine (`Engine.prepare` + rounds, the path every
candidate of `perf.measure`/`compare` takes), so the counts, the achieved rates and the
fractions of peak are the ones the JSON, the terminal table, the report and asv get:

1. 8192^3 bf16 matmul (JAX): XLA's FLOPs over the time, against the H200's dense bf16 peak
   (989.4 TFLOP/s); about 790 TFLOP/s (80%) was measured there before.
2. Device-to-device copy, 1 GiB (JAX `x + 1`, XLA's bytes accessed = read + write; and torch
   `dst.copy_(src)`, 2 x 1 GiB by hand): against 4.8 TB/s; about 4.3 TB/s expected.
3. BERT-base train step (`cached` dispatch, AdamW), 1x8 and 32x512: XLA's FLOPs per step
   and MFU. With `lax.scan` over layers XLA's cost model counts the scanned body once, so
   an analytic count is printed beside it (6 x params x tokens + attention 12 L B s^2 d);
   `--unroll` gives XLA's count of all 12 layers (slower compiles).
4. SPD resid_mlp3: FLOPs per step of the eager baseline (FlopCounterMode; a CUDA-graph
   replay dispatches no aten ops, so its own count reads 0) over the time of the baseline
   and of `Flags.fastest("cuda")`; CUDA kernels per step (profiler) for eager, `compile` and
   `cuda_graphs`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import traceback

from perfsuite._engine import Engine
from perfsuite._roofline import PEAKS, current_device, peak_key
from perfsuite._settings import Settings


ROWS: list[dict] = []


def measure(name: str, fn, settings: Settings, extra: dict | None = None) -> dict:
    """One candidate through the engine: its dict (counts, roofline) and `extra`."""
    engine = Engine(settings, contextlib.nullcontext)
    cand = engine.prepare(name, fn, None)
    engine.run_rounds([cand], settings.min_rounds)
    d = cand.as_dict()
    row = {
        "name": name,
        "per_call_s": d["per_call_s"],
        "counts": d.get("counts", {}).get("values", {}),
    }
    row["roofline"] = d.get("roofline") or {}
    row.update(extra or {})
    ROWS.append(row)
    r = row["roofline"]
    print(
        f"  {name}: {1e3 * row['per_call_s']:.3f} ms/call, FLOP/s {r.get('flops_per_s')}, "
        f"MFU {r.get('mfu')}, B/s {r.get('bytes_per_s')}, bw {r.get('bandwidth_utilisation')}",
        file=sys.stderr,
        flush=True,
    )
    return row


def section(title: str):
    def wrap(f):
        def run(*args):
            t0 = time.perf_counter()
            print(f"[{title}] ...", file=sys.stderr, flush=True)
            try:
                f(*args)
            except Exception as exc:  # one failing check must not lose the others
                traceback.print_exc()
                ROWS.append({"name": f"{title}: FAILED ({type(exc).__name__}: {exc})"[:160]})
            print(f"[{title}] {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

        return run

    return wrap


@section("matmul")
def matmul(settings: Settings, n: int) -> None:
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.bfloat16)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.bfloat16)
    f = jax.jit(lambda a, b: a @ b)
    # The matmul's HLO as XLA:GPU compiled it (a cuBLAS call or a dot fusion): the line
    # perfsuite's `matmul_flops` reads, printed so a test can hold its exact shape.
    for line in f.lower(a, b).compile().as_text().splitlines():
        if "custom-call(" in line or " dot(" in line:
            print("HLO:", line.strip()[:900], file=sys.stderr)
    measure(f"jax matmul {n}^3 bf16", lambda: f(a, b), settings, {"expect": "~790 TFLOP/s"})
    a32, b32 = a.astype(jnp.float32), b.astype(jnp.float32)
    measure(f"jax matmul {n}^3 f32 (default precision: TF32)", lambda: f(a32, b32), settings)


@section("copy")
def copy(settings: Settings, mib: int) -> None:
    import jax
    import jax.numpy as jnp

    n = (mib << 20) // 4
    x = jnp.zeros((n,), jnp.float32)
    f = jax.jit(lambda x: x + 1)
    measure(f"jax x+1, {mib} MiB f32 (read+write)", lambda: f(x), settings, {"expect": "~4.3 TB/s"})
    import torch

    if torch.cuda.is_available():
        src = torch.empty(n, dtype=torch.float32, device="cuda")
        dst = torch.empty_like(src)
        row = measure(f"torch copy_, {mib} MiB f32", lambda: dst.copy_(src), settings)
        row["by_hand_bytes_per_s"] = 2 * src.numel() * 4 / row["per_call_s"]
        row["roofline"]["bytes_per_s"] = row["by_hand_bytes_per_s"]
        key = peak_key(torch.cuda.get_device_name())
        if key:
            row["roofline"]["bandwidth_utilisation"] = row["by_hand_bytes_per_s"] / PEAKS[key][1]


def _bert_flops(params: int, batch: int, seq: int, layers: int, hidden: int) -> float:
    # Forward 2 N T plus backward 4 N T, and the attention scores and values
    # (2 x 2 B s^2 d per layer forward, times 3 with the backward).
    return 6.0 * params * batch * seq + 12.0 * layers * batch * seq * seq * hidden


@section("bert")
def bert(settings: Settings, unroll: bool, shapes: list[str]) -> None:
    import equinox as eqx
    import jax

    from trainfast.eqx.bert import BertConfig
    from trainfast.eqx.workloads import train_step_workload

    config = BertConfig(scan_layers=not unroll)
    for shape in shapes:
        batch, seq = (int(x) for x in shape.split("x"))
        w = train_step_workload("cached", batch=batch, seq=seq, config=config)
        model = w.state[0]
        params = sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))
        row = measure(f"BERT-base train step {shape} (scan={not unroll})", w, settings)
        analytic = _bert_flops(params, batch, seq, config.num_layers, config.hidden)
        row["analytic_flops"] = analytic
        key = peak_key(current_device("jax"))
        row["analytic_flops_per_s"] = analytic / row["per_call_s"]
        # BERT here trains in f32: TF32 tensor cores are JAX's default on the H200, so the
        # analytic rate is given against the TF32 peak, and against f32 by the roofline.
        if key:
            row["analytic_mfu_tf32"] = row["analytic_flops_per_s"] / PEAKS[key][0]["tf32"]
            row["analytic_mfu_f32"] = row["analytic_flops_per_s"] / PEAKS[key][0]["f32"]


@section("spd")
def spd(settings: Settings, quick: bool) -> None:
    import torch

    from trainfast.spd import Flags, make_trainer

    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device for the SPD rows")
    base = make_trainer("resid_mlp3", flags=Flags(), device="cuda")
    fast = make_trainer("resid_mlp3", flags=Flags.fastest("cuda"), device="cuda")
    for _ in range(6):  # past the eager steps, compilation and the graph capture
        fast.step()
    b = measure("SPD resid_mlp3 baseline (eager)", base.step, settings)
    flops = b["counts"].get("torch_flops")
    f = measure("SPD resid_mlp3 fastest(cuda)", fast.step, settings)
    if flops:
        key = peak_key(torch.cuda.get_device_name())
        for row in (b, f):
            row["eager_flops"] = flops
            row["eager_flops_per_s"] = flops / row["per_call_s"]
            if key:
                row["eager_mfu_f32"] = row["eager_flops_per_s"] / PEAKS[key][0]["f32"]
    base.close()
    fast.close()
    if quick:
        return
    # Kernels per step of eager vs compile vs cuda_graphs (the profiler's CUDA kernel events).
    from perfsuite._counts import measure_counts

    for name, flags in (
        ("eager", Flags()),
        ("compile", Flags(compile=True)),
        ("cuda_graphs", Flags(cuda_graphs=True, no_host_syncs=True)),
    ):
        t = make_trainer("resid_mlp3", flags=flags, device="cuda")
        for _ in range(6):
            t.step()
        c = measure_counts(t.step)
        ROWS.append({"name": f"SPD resid_mlp3 kernels/step: {name}", "counts": dict(c)})
        t.close()


def _g(x, spec=".3g") -> str:
    return "" if x is None else format(x, spec)


def table() -> str:
    lines = [
        "| check | ms/call | FLOPs/call | TFLOP/s | MFU | TB/s | bw util | other |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        r = row.get("roofline") or {}
        c = row.get("counts") or {}
        other = {
            k: v for k, v in row.items() if k not in ("name", "per_call_s", "counts", "roofline")
        }
        other.update({k: c[k] for k in ("cuda_kernels", "hlo_fusions", "aten_ops") if k in c})
        lines.append(
            "| "
            + " | ".join(
                [
                    row["name"],
                    _g(1e3 * row["per_call_s"], ".4g") if "per_call_s" in row else "",
                    _g(r.get("flops_per_call")),
                    _g(r["flops_per_s"] / 1e12) if r.get("flops_per_s") else "",
                    _g(r.get("mfu"), ".1%"),
                    _g(r["bytes_per_s"] / 1e12) if r.get("bytes_per_s") else "",
                    _g(r.get("bandwidth_utilisation"), ".1%"),
                    ", ".join(
                        f"{k}={_g(v) if isinstance(v, float) else v}" for k, v in other.items()
                    ),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the kernel counts")
    parser.add_argument("--unroll", action="store_true", help="BERT without lax.scan")
    parser.add_argument("--batches", nargs="+", default=["1x8", "32x512"])
    parser.add_argument("--matmul", type=int, default=8192, help="matmul size (n^3)")
    parser.add_argument("--copy-mib", type=int, default=1024, help="copy size in MiB")
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--sections", default="matmul,copy,bert,spd", help="comma-separated sections to run"
    )
    args = parser.parse_args()
    settings = Settings(budget_s=10.0, min_rounds=10, measure_s=0.5)
    started = time.perf_counter()
    sections = set(args.sections.split(","))
    if "matmul" in sections:
        matmul(settings, args.matmul)
    if "copy" in sections:
        copy(settings, args.copy_mib)
    if "bert" in sections:
        bert(settings, args.unroll, args.batches)
    if "spd" in sections:
        spd(settings, args.quick)
    import jax

    dev = jax.devices()[0]
    print(f"## Roofline checks: {dev.device_kind} ({dev.platform}), jax {jax.__version__}\n")
    print(table())
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(ROWS, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
