"""Tensor-parallel `make_module_opt` scaling table (issue: seed 001's table on real GPUs).

Runs unchanged on any device count: the mesh is `tp` over all devices (or `dp x tp` with
`--dp`), and a configuration whose sharded dimensions do not divide by `tp` is skipped.
For each BERT size it reports params, bytes, transforms, the first run of
`make_module_opt` (trace + compile + sharded creation + optimizer state, timed to ready),
the steady train-step time with `make_train_step(dispatch="cached")`, peak memory per
device, and checks that TP'd weights are really split (per-device bytes ~ total / tp).

    # 8 simulated CPU devices (what CI machines can do):
    python scripts/tp_scaling.py --cpu-devices 8 --configs 2x64 4x128 --batch 2 --seq 16
    # all GPUs of a host, BERT 4L-768H up to 48L-4096H:
    python scripts/tp_scaling.py --configs 4x768 12x1024 24x2048 36x2048 48x2048 60x2048 48x4096
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["4x768", "12x1024"], help="LAYERSxHIDDEN")
    p.add_argument("--cpu-devices", type=int, default=None, help="simulate N CPU devices")
    p.add_argument("--dp", type=int, default=1, help="data-parallel axis size (tp = devices / dp)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--markdown", default=None, help="also write the table here")
    p.add_argument("--json", default=None, help="also write one JSON object per row here")
    p.add_argument(
        "--compiler-options",
        default=None,
        help="XLA options for the creation's compile only, as JSON, e.g. "
        "'{\"xla_backend_optimization_level\": 0}'",
    )
    p.add_argument(
        "--compilation-cache",
        default=None,
        metavar="DIR",
        help="persistent compilation cache (jax_compilation_cache_dir): a second run reads it",
    )
    p.add_argument("--scan-layers", action="store_true", help="train step scans the layers")
    p.add_argument(
        "--random-kernel",
        choices=("auto", "on", "off"),
        default="auto",
        help="make_module_opt(random_kernel=...): the creation's random bits by JAX's threefry "
        "GPU kernel (auto: on a mesh of one GPU) or by XLA's own lowering (off)",
    )
    p.add_argument("--no-step", action="store_true", help="time the creation only")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.cpu_devices:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={args.cpu_devices}"
        )
        os.environ["JAX_PLATFORMS"] = "cpu"
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np
    import optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from trainfast.eqx import bert_tp_plan, make_module_opt, make_train_step
    from trainfast.eqx.bert import BertConfig, BertMLM, mlm_batches, mlm_loss

    if args.compilation_cache:
        jax.config.update("jax_compilation_cache_dir", args.compilation_cache)
        # Cache every program (the creation's small slicing programs too), however fast.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    import json

    compiler_options = json.loads(args.compiler_options) if args.compiler_options else None
    random_kernel = {"auto": None, "on": True, "off": False}[args.random_kernel]
    compile_s = {"s": 0.0}
    events: dict[str, list[float]] = {}  # every compile-time event of the first run

    def on_duration(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compile_s["s"] += duration
        events.setdefault(event.rsplit("/", 1)[-1], []).append(duration)

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    records = []

    devices = jax.devices()
    n = len(devices)
    if n % args.dp:
        print(f"--dp={args.dp} does not divide {n} devices", file=sys.stderr)
        return 2
    tp = n // args.dp
    mesh = Mesh(np.array(devices).reshape(args.dp, tp), ("dp", "tp"))
    kind = devices[0].device_kind
    header = (
        f"devices: {n} x {kind} ({jax.default_backend()}), mesh dp={args.dp} x tp={tp}, "
        f"batch {args.batch}x{args.seq}, jax {jax.__version__}"
    )
    print(header, flush=True)
    rows = [
        "| model | params | size (fp32) | transforms | first run make_module_opt (s) | step (ms, cached) "
        "| peak mem/device (GiB) | TP weight bytes/device vs total/tp | loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def peak_gib():
        stats = [d.memory_stats() or {} for d in devices]
        peaks = [s.get("peak_bytes_in_use") for s in stats]
        return "n/a" if None in peaks else f"{max(peaks) / 2**30:.2f}"

    for spec in args.configs:
        layers, hidden = (int(x) for x in spec.lower().split("x"))
        heads = max(1, hidden // 64)
        config = BertConfig(
            num_layers=layers,
            hidden=hidden,
            heads=heads,
            intermediate=4 * hidden,
            dropout=0.0,
            attention="fused",
            scan_layers=args.scan_layers,
        )
        if hidden % tp or (4 * hidden) % tp:
            rows.append(f"| {spec} | skipped: hidden {hidden} not divisible by tp={tp} |")
            continue
        tx = optax.adamw(1e-4)
        try:
            compile_s["s"] = 0.0
            events.clear()
            start = time.perf_counter()
            model, opt = make_module_opt(
                lambda k, c=config: BertMLM(c, key=k),
                tx,
                plan=bert_tp_plan("tp"),
                mesh=mesh,
                key=jr.key(0),
                compiler_options=compiler_options,
                random_kernel=random_kernel,
            )
            jax.block_until_ready(
                (eqx.filter(model, eqx.is_array), eqx.filter(opt.state, eqx.is_array))
            )
            first_run = time.perf_counter() - start
            first_compile = compile_s["s"]
            created_peak = peak_gib()
        except Exception as exc:  # out of memory is a result here: the largest model that fits
            rows.append(
                f"| {spec} | failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]} |"
            )
            records.append({"model": spec, "error": rows[-1]})
            print(rows[-1], flush=True)
            break
        params = sum(
            x.size for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
        )
        q = model.layers[0].attention.query.weight
        per_device = max(s.data.nbytes for s in q.addressable_shards)
        split = f"{per_device / (q.nbytes / tp):.2f}x"
        record = {
            "model": f"{layers}L-{hidden}H",
            "params": int(params),
            "bytes": int(params * 4),
            "transforms": 6 * layers,
            "first_run_s": first_run,
            "first_run_compile_s": first_compile,
            # Per event: how many, their sum and the largest (the creation's own compile is
            # the largest backend compile; the rest are its small slicing programs).
            "first_run_events": {
                k: [len(v), round(sum(v), 3), round(max(v), 3)] for k, v in events.items()
            },
            "peak_after_creation_gib": created_peak,
            "split": split,
        }
        if args.no_step:
            records.append(record)
            rows.append(
                f"| {layers}L-{hidden}H | {params / 1e9:.2f}B | {params * 4 / 2**30:.1f} GiB "
                f"| {6 * layers} | {first_run:.2f} | - | {created_peak} | {split} | - |"
            )
            print(rows[-1], flush=True)
            del model, opt
            continue
        data_sharding = NamedSharding(mesh, PartitionSpec("dp"))
        batches = mlm_batches(config, args.batch, args.seq, key=jr.key(1))
        batch = jax.device_put(next(batches), data_sharding)
        step = make_train_step(mlm_loss, dispatch="cached")
        keys = jr.split(jr.key(2), args.steps + 2)
        try:
            model, opt, aux = step(model, opt, batch, keys[0])
            jax.block_until_ready(aux)
            times = []
            for i in range(args.steps):
                t = time.perf_counter()
                model, opt, aux = step(model, opt, batch, keys[i + 1])
                jax.block_until_ready((model, opt, aux))
                times.append(time.perf_counter() - t)
        except Exception as exc:  # e.g. out of memory for the gradients: creation still counts
            record["error"] = f"step failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
            records.append(record)
            rows.append(
                f"| {layers}L-{hidden}H | created in {first_run:.2f} s; {record['error']} |"
            )
            print(rows[-1], flush=True)
            break
        loss = aux["loss"] if isinstance(aux, dict) and "loss" in aux else jnp.nan
        record.update(step_ms=1e3 * float(np.median(times)), peak_gib=peak_gib(), loss=float(loss))
        records.append(record)
        rows.append(
            f"| {layers}L-{hidden}H | {params / 1e9:.2f}B | {params * 4 / 2**30:.1f} GiB | {6 * layers} "
            f"| {first_run:.2f} | {1e3 * float(np.median(times)):.1f} | {peak_gib()} | {split} "
            f"| {float(loss):.3f} |"
        )
        print(rows[-1], flush=True)
        del model, opt
    table = header + "\n\n" + "\n".join(rows)
    print("\n" + table)
    if args.markdown:
        from pathlib import Path

        Path(args.markdown).write_text(table + "\n")
    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps({"header": header, "rows": records}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
