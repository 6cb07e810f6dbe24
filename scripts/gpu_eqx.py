"""Time the trainfast.eqx train-step dispatchers on an accelerator (BERT-base MLM, AdamW).

Usage (on the GPU machine, project not installed):

    PYTHONPATH=src:. python3 scripts/gpu_eqx.py [--batches 1x8 32x512] [--unroll] [--json PATH]

For each batch shape and dispatcher (`filter_jit`, `partition`, `cached`, and `jit` =
hand-written partition + `jax.jit` with donation) it prints the first-call time, the median
of 20 steady-state steps (each waited for with `jax.block_until_ready`) after 3 warm-up steps,
and the per-step time of 20 steps dispatched back to back and waited for once at the end.
Goal: `cached` no slower than `jit` at 32x512, and >= 2.5x faster than `filter_jit` at 1x8.
"""

import argparse
import json
import statistics
import time

import jax

from trainfast.eqx.bert import BertConfig
from trainfast.eqx.workloads import train_step_workload


DISPATCHES = ("filter_jit", "partition", "cached", "jit")


def time_dispatch(dispatch: str, config: BertConfig, batch: int, seq: int, steps: int) -> dict:
    w = train_step_workload(dispatch, batch=batch, seq=seq, config=config)
    jax.block_until_ready(w.batches)
    t0 = time.perf_counter()
    jax.block_until_ready(w())
    first = time.perf_counter() - t0
    for _ in range(3):
        jax.block_until_ready(w())
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        jax.block_until_ready(w())
        times.append(time.perf_counter() - t0)
    jax.block_until_ready(w.run(3))
    t0 = time.perf_counter()
    jax.block_until_ready(w.run(steps))
    loop = (time.perf_counter() - t0) / steps
    return {
        "dispatch": dispatch,
        "batch": f"{batch}x{seq}",
        "first_call_s": first,
        "step_ms": 1e3 * statistics.median(times),
        "step_min_ms": 1e3 * min(times),
        "loop_ms_per_step": 1e3 * loop,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", nargs="+", default=["1x8", "32x512"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dispatches", nargs="+", default=list(DISPATCHES))
    parser.add_argument("--attention", choices=["eager", "fused"], default="eager")
    parser.add_argument(
        "--unroll",
        action="store_true",
        help="unroll the 12 layers instead of `lax.scan` over them (slower compiles; "
        "the pytree, and so dispatch cost, is the same either way)",
    )
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()

    config = BertConfig(attention=args.attention, scan_layers=not args.unroll)
    dev = jax.devices()[0]
    print(
        f"device: {dev.device_kind} ({dev.platform}), jax {jax.__version__}, BERT-base "
        f"{config.num_layers}L-{config.hidden}H, attention={config.attention}, "
        f"scan_layers={config.scan_layers}, AdamW, dropout {config.dropout}",
        flush=True,
    )
    rows = []
    header = f"{'batch':>7} {'dispatch':>11} {'first call s':>12} {'step ms':>8} "
    header += f"{'min ms':>8} {'loop ms/step':>12}"
    print(header, flush=True)
    for shape in args.batches:
        batch, seq = (int(x) for x in shape.split("x"))
        for dispatch in args.dispatches:
            r = time_dispatch(dispatch, config, batch, seq, args.steps)
            rows.append(r)
            print(
                f"{r['batch']:>7} {dispatch:>11} {r['first_call_s']:>12.1f} "
                f"{r['step_ms']:>8.2f} {r['step_min_ms']:>8.2f} {r['loop_ms_per_step']:>12.2f}",
                flush=True,
            )
    by = {(r["batch"], r["dispatch"]): r for r in rows}
    for shape in args.batches:
        c, f, j = (by.get((shape, d)) for d in ("cached", "filter_jit", "jit"))
        if c and f:
            print(
                f"{shape}: cached vs filter_jit: step {f['step_ms'] / c['step_ms']:.2f}x, "
                f"loop {f['loop_ms_per_step'] / c['loop_ms_per_step']:.2f}x faster"
            )
        if c and j:
            print(
                f"{shape}: cached / jit time: step {c['step_ms'] / j['step_ms']:.3f}, "
                f"loop {c['loop_ms_per_step'] / j['loop_ms_per_step']:.3f} (<= 1 is no slower)"
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": dev.device_kind, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
