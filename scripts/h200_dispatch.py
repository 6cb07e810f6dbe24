"""Is the rest of a waited BERT-base step the dispatch of its many buffers? (issue 17 §3)

On the H200, `cached` BERT-base 1x8 (unrolled, fused update) took 6.18 ms per waited step
against ~3.9 ms per step back to back (docs/train-step-h200.md), so ~2.2 ms of a waited
step is not the device's work, and the 2.5x target over `filter_jit` needs <= 5.1 ms.
Hypothesis: the runtime's cost per argument and output buffer (~200 parameters in and out,
plus the optimizer state), paid before the device starts. Two measurements:

1. An elementwise program over `n` donated arrays of 4096 floats vs the same bytes in one
   array: per waited call and per call back to back, n = 1..512.
2. BERT-base 1x8 (unrolled, `optax.flatten(adamw)`): the donated `jax.jit` reference vs the
   same step on *packed* state (parameters raveled into one vector, unraveled inside the
   program; the flat optimizer state is already one vector per moment): per waited step and
   per step back to back, same math.

    PYTHONPATH=src:.:.gpu-site python3 scripts/h200_dispatch.py [--tiny]   # ~2-4 min on a GPU

`--tiny` runs BERT at tiny widths (a CPU check of the script). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jax.flatten_util import ravel_pytree

from trainfast.eqx.bert import BertConfig, BertMLM, mlm_batches, mlm_loss


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
    model = BertMLM(config, key=jr.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    tx = optax.flatten(optax.adamw(1e-4))
    data = mlm_batches(config, batch, seq, key=jr.key(1))
    batches = [(next(data), k) for k in jr.split(jr.key(2), 4)]

    def body(p, s, b, k):
        (_, aux), grads = jax.value_and_grad(
            lambda q: mlm_loss(eqx.combine(q, static), b, k), has_aux=True
        )(p)
        updates, s = tx.update(grads, s, p)
        return eqx.apply_updates(p, updates), s

    tree_step = jax.jit(body, donate_argnums=(0, 1))
    flat0, unravel = ravel_pytree(params)

    def packed_body(fp, s, b, k):
        p, s = body(unravel(fp), s, b, k)
        return ravel_pytree(p)[0], s

    packed_step = jax.jit(packed_body, donate_argnums=(0, 1))
    rows = []
    for name, step, state in (
        ("jit, tree of parameters", tree_step, (params, tx.init(params))),
        ("jit, packed parameters", packed_step, (flat0, tx.init(params))),
    ):
        n_in = len(jax.tree.leaves(state))
        holder = [state, 0]

        def call(step=step, holder=holder):
            b, k = batches[holder[1] % len(batches)]
            holder[1] += 1
            holder[0] = step(*holder[0], b, k)
            return holder[0]

        t0 = time.perf_counter()
        jax.block_until_ready(call())
        first = time.perf_counter() - t0
        for _ in range(3):
            call()
        rows.append(
            (
                name,
                n_in,
                timed(call, waited=True, calls=20),
                timed(call, waited=False, calls=20),
                first,
            )
        )
    print(
        f"\n## BERT {config.num_layers}L-{config.hidden}H {batch}x{seq}, fused AdamW: tree vs packed parameters\n"
    )
    print(
        "| step | state buffers | per waited step (ms) | per step, 20 back to back (ms) | first call (s) |"
    )
    print("|---|---|---|---|---|")
    for name, n_in, w, loop, first in rows:
        print(f"| {name} | {n_in} | {w * 1e3:.2f} | {loop * 1e3:.2f} | {first:.1f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny BERT widths (a CPU check)")
    args = p.parse_args()
    dev = jax.devices()[0]
    print(f"# {dev.device_kind} ({dev.platform}), jax {jax.__version__}")
    buffers_part()
    if args.tiny:
        bert_part(BertConfig.tiny(12, dropout=0.0), 1, 8)
    else:
        bert_part(BertConfig(), 1, 8)
        bert_part(BertConfig(), 32, 512)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
