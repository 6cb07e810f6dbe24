"""`make_module_opt` first run, layers initialised unrolled vs vmapped (issue 17, section 1).

Each configuration is created twice in this process, once per initialiser (a new
`build_model` each time, so each is a fresh trace and compile); jax.monitoring gives the
backend-compile share. Prints a Markdown table.

    PYTHONPATH=src:.:.gpu-site python scripts/h200_creation.py --configs 4x768 12x1024
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--configs", nargs="+", default=["4x768", "12x1024"])
    p.add_argument("--inits", nargs="+", default=["vmapped", "unrolled"])
    args = p.parse_args()

    import equinox as eqx
    import jax
    import jax.random as jr
    import numpy as np
    import optax
    from jax.sharding import Mesh

    from trainfast.eqx import _bert, bert_tp_plan, make_module_opt
    from trainfast.eqx.bert import BertConfig, BertMLM

    vmapped = _bert._init_layers

    def unrolled(config, keys):
        return tuple(_bert.Layer(config, key=k) for k in keys)

    durations: dict[str, float] = {}

    def listener(event, duration, **_):
        durations[event] = durations.get(event, 0.0) + duration

    jax.monitoring.register_event_duration_secs_listener(listener)
    mesh = Mesh(np.array(jax.devices()[:1]), ("tp",))
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}")
    print("| config | init | first run (s) | backend compile (s) |")
    print("|---|---|---|---|")
    for spec in args.configs:
        layers, hidden = (int(x) for x in spec.split("x"))
        config = BertConfig(
            num_layers=layers, hidden=hidden, heads=hidden // 64, intermediate=4 * hidden
        )
        for init in args.inits:
            _bert._init_layers = vmapped if init == "vmapped" else unrolled
            durations.clear()
            start = time.perf_counter()
            model, opt = make_module_opt(
                lambda k: BertMLM(config, key=k),  # noqa: B023 (called right here)
                optax.adamw(1e-4),
                plan=bert_tp_plan("tp"),
                mesh=mesh,
                key=jr.key(0),
            )
            jax.block_until_ready((eqx.filter(model, eqx.is_array), opt.state))
            first = time.perf_counter() - start
            compile_s = durations.get("/jax/core/compile/backend_compile_duration", float("nan"))
            print(f"| {layers}L-{hidden}H | {init} | {first:.2f} | {compile_s:.2f} |", flush=True)
            del model, opt
    _bert._init_layers = vmapped


if __name__ == "__main__":
    main()
