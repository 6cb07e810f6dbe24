"""Is the rest of a waited BERT-base step the dispatch of its many buffers? (issue 17 §3)

On the H200, `cached` BERT-base 1x8 (unrolled, fused update) took 6.18 ms per waited step
against ~3.9 ms per step back to back (docs/train-step-h200.md), so ~2.2 ms of a waited
step is not the device's work, and the 2.5x target over `filter_jit` needs <= 5.1 ms.
Hypothesis: the runtime's cost per argument and output buffer (~200 parameters in and out,
plus the optimizer state), paid before the device starts. Two measurements:

1. An elementwise program over `n` donated arrays of 4096 floats vs the same bytes in one
   array: per waited call and per call back to back, n = 1..512.
2. BERT-base 1x8 and 32x512 (unrolled, fused AdamW): `filter_jit`, the donated `jax.jit`
   reference, `cached`, and `cached` on a `trainfast.eqx.Packed` model (parameters in one
   buffer, unpacked inside the program): per waited step and per step back to back.

    PYTHONPATH=src:.:.gpu-site python3 scripts/h200_dispatch.py [--tiny]   # ~2-4 min on a GPU

`--tiny` runs BERT at tiny widths (a CPU check of the script). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from trainfast.eqx.bert import BertConfig
from trainfast.eqx.workloads import train_step_workload


def timed(call, *, waited: bool, calls: int, repeats: int = 5) -> float:
    """Median over `repeats` of seconds per call; `waited`: block after every call."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            r = call()
            if waited:
                jax.block_until_ready(r)
        jax.block_until_ready(r)
        out.append((time.perf_counter() - start) / calls)
    return statistics.median(out)


def buffers_part() -> None:
    print("\n## Dispatch cost per buffer: elementwise over n donated arrays of 4096 f32\n")
    print(
        "| n | waited, n arrays (us) | waited, 1 array of n x 4096 (us) | loop, n arrays | loop, 1 array |"
    )
    print("|---|---|---|---|---|")
    f = jax.jit(lambda xs: [x * 1.0001 for x in xs], donate_argnums=0)
    for n in (1, 8, 32, 128, 512):
        row = []
        for packed in (False, True):
            holder = [[jnp.ones(4096 * (n if packed else 1)) for _ in range(1 if packed else n)]]

            def call(holder=holder):
                holder[0] = f(holder[0])
                return holder[0]

            call()
            row.append((timed(call, waited=True, calls=50), timed(call, waited=False, calls=50)))
        (wn, ln), (w1, l1) = row
        print(f"| {n} | {wn * 1e6:.0f} | {w1 * 1e6:.0f} | {ln * 1e6:.0f} | {l1 * 1e6:.0f} |")


def bert_part(config: BertConfig, batch: int, seq: int) -> None:
    rows = []
    for name, kw in (
        ("filter_jit", dict(dispatch="filter_jit", flatten=True)),
        ("jit (donated reference)", dict(dispatch="jit", flatten=True)),
        ("cached", dict(dispatch="cached", flatten=True)),
        ("cached, packed parameters", dict(dispatch="cached", packed=True)),
    ):
        w = train_step_workload(config=config, batch=batch, seq=seq, **kw)
        n_state = len(jax.tree.leaves(w.state))
        t0 = time.perf_counter()
        jax.block_until_ready(w())
        first = time.perf_counter() - t0
        for _ in range(3):
            w()
        waited = timed(w, waited=True, calls=20)
        loop = timed(lambda w=w: w.run(20), waited=False, calls=1) / 20
        rows.append((name, n_state, waited, loop, first))
        del w
    print(
        f"\n## BERT {config.num_layers}L-{config.hidden}H {batch}x{seq}, unrolled, "
        "fused AdamW: dispatchers and packed parameters\n"
    )
    print(
        "| step | state buffers | per waited step (ms) | per step, 20 back to back (ms) | first call (s) |"
    )
    print("|---|---|---|---|---|")
    base = rows[0][2]
    for name, n_state, w, loop, first in rows:
        print(
            f"| {name} | {n_state} | {w * 1e3:.2f} ({base / w:.2f}x filter_jit) | "
            f"{loop * 1e3:.2f} | {first:.1f} |"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny BERT widths (a CPU check)")
    p.add_argument(
        "--shapes", default="1x8,32x512", help="BERT batch x seq shapes, e.g. 32x512 (default both)"
    )
    p.add_argument("--no-buffers", action="store_true", help="skip the per-buffer table")
    args = p.parse_args()
    try:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
        if any(len(s) != 2 or min(s) < 1 for s in shapes):
            raise ValueError
    except ValueError:
        p.error(f"--shapes: {args.shapes!r} is not BATCHxSEQ[,BATCHxSEQ...], e.g. 1x8,32x512")
    dev = jax.devices()[0]
    print(f"# {dev.device_kind} ({dev.platform}), jax {jax.__version__}")
    if not args.no_buffers:
        buffers_part()
    config = BertConfig.tiny(12, dropout=0.0) if args.tiny else BertConfig()
    for batch, seq in shapes:
        bert_part(config, batch, seq)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
