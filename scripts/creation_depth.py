"""`make_module_opt`'s first run against depth, stacked outputs vs one output per leaf (issue 17).

BERT at tiny widths (`BertConfig.tiny`), `bert_tp_plan`, AdamW, a `tp` mesh of one device.
Each first run is a fresh `make_module_opt` (a new jitted program), waited for; wall and
process CPU seconds (the CPU seconds are steadier on a shared machine) and the backend
compile seconds from `jax.monitoring`. `--outputs per-leaf` gives every leaf its own output
of the jitted creation, as `make_module_opt` did before the stacked outputs (the program
still splits the layers inside it); `stacked` is today's. Prints a Markdown table.

    PYTHONPATH=src:. python scripts/creation_depth.py --layers 2 8 24 --outputs stacked per-leaf
    PYTHONPATH=src:. python scripts/creation_depth.py --compiler-options \\
        '{"xla_backend_optimization_level": 0}'
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", nargs="+", type=int, default=[2, 8, 24])
    p.add_argument("--outputs", nargs="+", default=["stacked", "per-leaf"])
    p.add_argument("--repeat", type=int, default=2, help="first runs per size (fresh each)")
    p.add_argument("--compiler-options", default=None, help="JSON, for the creation only")
    args = p.parse_args(argv)
    bad = [o for o in args.outputs if o not in ("stacked", "per-leaf")]
    if bad:
        p.error(f"--outputs must be 'stacked' or 'per-leaf', got {bad}")

    import equinox as eqx
    import jax
    import jax.random as jr
    import numpy as np
    import optax
    from jax.sharding import Mesh

    import trainfast.eqx._tensor_parallel as tp
    from trainfast.eqx import bert_tp_plan, make_module_opt
    from trainfast.eqx.bert import BertConfig, BertMLM

    stacked_groups = tp.group_leaves

    def per_leaf_groups(abstract, shardings):
        _, _, leaf_sh, treedef = stacked_groups(abstract, shardings)
        return [[i] for i in range(len(leaf_sh))], list(leaf_sh), leaf_sh, treedef

    compile_s = {"s": 0.0}

    def on_duration(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compile_s["s"] += duration

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    options = json.loads(args.compiler_options) if args.compiler_options else None
    mesh = Mesh(np.array(jax.devices()[:1]), ("tp",))
    print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}, compiler_options={options}")
    print("| outputs | layers | first run wall (s) | CPU (s) | backend compile (s) |")
    print("|---|---|---|---|---|")
    # Warm the process (imports, the small slicing programs of the smallest size) so the
    # first row is not charged for them.
    make_module_opt(
        lambda k: BertMLM(BertConfig.tiny(1), key=k),
        optax.adamw(1e-3),
        plan=bert_tp_plan("tp"),
        mesh=mesh,
        key=jr.key(0),
    )
    for outputs in args.outputs:
        tp.group_leaves = stacked_groups if outputs == "stacked" else per_leaf_groups
        for layers in args.layers:
            config = BertConfig.tiny(layers, dropout=0.0)
            for _ in range(args.repeat):
                compile_s["s"] = 0.0
                wall, cpu = time.perf_counter(), time.process_time()
                model, opt = make_module_opt(
                    lambda k, c=config: BertMLM(c, key=k),
                    optax.adamw(1e-3),
                    plan=bert_tp_plan("tp"),
                    mesh=mesh,
                    key=jr.key(0),
                    compiler_options=options,
                )
                jax.block_until_ready((eqx.filter(model, eqx.is_array), opt.state))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                print(
                    f"| {outputs} | {layers} | {wall:.2f} | {cpu:.2f} | {compile_s['s']:.2f} |",
                    flush=True,
                )
    tp.group_leaves = stacked_groups
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
