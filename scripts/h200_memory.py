"""Memory as a metric on the H200 (issue 14): checks and numbers, as Markdown tables.

Usage (on the device, from the tree, nothing installed; under 4 minutes):

    PYTHONPATH=src:.:.gpu-site python3 scripts/h200_memory.py [--parts torch,jax,bert,spd]
        [--budget-s 220] [--json PATH]

Parts, in order (each skipped, and said so, once the budget is spent):

1. `torch`: a torch function allocating exactly 1 GiB on CUDA reads 1 GiB (`torch-cuda`
   source: allocated peak, reserved beside it), three times the same to the byte; then the
   `test_memory.py` CUDA tests.
2. `jax`: jitted outer-product-cumsum functions with known temporaries (n x n float32, twice):
   XLA's static `memory_analysis()` beside the runtime `jax-device` peak (exact through the
   ballast), in increasing and then decreasing size (the second order is the case where the
   never-resetting mark would otherwise hide the peak).
3. `bert`: the trainfast.eqx train-step dispatchers at BERT-base 1x8 and 32x512, donate on
   and off: the runtime peak of one warm step above what was in use before it (`jax-device`,
   one untimed step, as perfsuite measures a candidate), the state's bytes, and XLA's static
   peak / alias bytes for `cached`. Donation's claim: the peak drops by about the state.
4. `spd`: the trainfast.spd ablation's peak memory column (CUDA allocated peak over the
   timed windows, plus the CUDA graphs' private pool) for resid_mlp1 and resid_mlp3:
   baseline, cuda_graphs, bf16, compile.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


# JAX preallocates 75% of the GPU by default; torch runs in the same process here.
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.6")

MiB, GiB = 2**20, 2**30
START = time.perf_counter()
RESULTS: dict = {}
#: `--smoke`: tiny sizes, to check the script on a CPU before it goes to the device.
SMOKE = False


def left(budget: float) -> float:
    return budget - (time.perf_counter() - START)


def mib(n) -> str:
    return "" if n is None else f"{n / MiB:.1f}"


def part_torch() -> None:
    import torch

    from perfsuite._memory import measure_call

    print("\n## torch CUDA: exactly 1 GiB\n")
    if not torch.cuda.is_available():
        print("no CUDA")
        return

    def one_gib():
        t = torch.empty(GiB, dtype=torch.uint8, device="cuda")
        t.fill_(1)
        return t[:1].sum()

    one_gib()
    rows = [measure_call(one_gib, "torch-cuda") for _ in range(3)]
    print("| call | peak bytes | peak - 1 GiB | retained | reserved peak | exact |")
    print("|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        print(
            f"| {i + 1} | {r.peak_bytes} | {r.peak_bytes - GiB} | {r.retained_bytes} | "
            f"{r.extra.get('reserved_peak_bytes')} | {r.exact} |"
        )
    same = len({r.peak_bytes for r in rows}) == 1
    ok = same and GiB <= rows[0].peak_bytes <= GiB + 2 * MiB
    print(f"\n1 GiB reads 1 GiB (+ <= 2 MiB rounding), identical 3x: {'PASS' if ok else 'FAIL'}")
    RESULTS["torch"] = {"peaks": [r.peak_bytes for r in rows], "ok": ok}
    torch.cuda.empty_cache()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "perfsuite.plugin", "-p", "no:cacheprovider", "-q",
         "tests/perfsuite/test_memory.py", "-k", "cuda or jax_device"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    print(
        "\nCUDA/JAX-GPU tests of tests/perfsuite/test_memory.py:",
        out.stdout.strip().splitlines()[-1],
    )


def part_jax() -> None:
    import jax
    import jax.numpy as jnp

    from perfsuite._memory import analyse_jitted, measure_call

    print(f"\n## JAX on {jax.devices()[0].device_kind}: static analysis vs runtime peak\n")
    if jax.devices()[0].memory_stats() is None:
        print("memory_stats() is None on this backend: runtime source falls back to host-rss")

    def f(x):
        return jnp.cumsum(jnp.outer(x, x), axis=0)[::7, ::7].sum()

    jf = jax.jit(f)
    print("| n | order | static peak MiB | runtime peak MiB | runtime exact | ballast MiB |")
    print("|---|---|---|---|---|---|")
    rows = []
    orders = (("increasing", (4096, 8192, 16384)), ("decreasing", (8192, 4096)))
    if SMOKE:
        orders = (("increasing", (256, 512)), ("decreasing", (256,)))
    for order, sizes in orders:
        for n in sizes:
            x = jnp.ones(n, jnp.float32)
            static = analyse_jitted(jf, x)
            jf(x).block_until_ready()
            rt = measure_call(lambda x=x: jf(x), "jax")
            rows.append((n, order, static.peak_bytes, rt.peak_bytes, rt.exact))
            print(
                f"| {n} | {order} | {mib(static.peak_bytes)} | {mib(rt.peak_bytes)} | "
                f"{rt.exact} | {mib(rt.extra.get('ballast_bytes'))} |"
            )
    RESULTS["jax"] = rows


#: `--bert-rows`: the (batch, dispatch, donate) rows of the `bert` part, all by default.
BERT_ROWS = [
    (b, d, don)
    for b in ("1x8", "32x512")
    for d, don in (("cached", True), ("cached", False), ("filter_jit", True),
                   ("partition", True), ("jit", True))
]  # fmt: skip


def parse_bert_rows(text: str) -> list[tuple[str, str, bool]]:
    """`32x512:jit,1x8:cached:nodonate` -> rows; every name checked against BERT_ROWS."""
    rows = []
    for item in text.split(","):
        batch, dispatch, *rest = item.split(":")
        row = (batch, dispatch, rest != ["nodonate"])
        if row not in BERT_ROWS or rest not in ([], ["nodonate"]):
            raise SystemExit(
                f"--bert-rows: {item!r} is not one of BATCH:DISPATCH[:nodonate], "
                f"e.g. 32x512:filter_jit"
            )
        rows.append(row)
    return rows


def part_bert(budget: float, rows_wanted: list[tuple[str, str, bool]]) -> None:
    import equinox as eqx
    import jax

    from perfsuite._memory import analyse_jitted, measure_call
    from trainfast.eqx._bert import mlm_loss
    from trainfast.eqx._train_step import make_train_step
    from trainfast.eqx.bert import BertConfig
    from trainfast.eqx.workloads import train_step_workload

    print("\n## trainfast.eqx BERT-base train step: peak memory of one warm step\n")
    print(
        "| batch | dispatch | donate | state MiB | runtime step peak MiB | exact | retained MiB "
        "| static peak MiB (cached) | alias MiB (cached) | first call s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    # Every dispatcher with donation (the default); donation off for `cached` (the claim is
    # about donation, which every dispatcher implements the same way).
    config = BertConfig.tiny(2) if SMOKE else BertConfig()
    for bshape, dispatch, donate in rows_wanted:
        if left(budget) < 25:
            print(f"| {bshape} | {dispatch} | {donate} | skipped (time budget) |")
            continue
        batch, seq = map(int, bshape.split("x"))
        if SMOKE:
            batch, seq = 2, 16
        w = train_step_workload(dispatch, batch=batch, seq=seq, config=config, donate=donate)
        state_bytes = sum(x.nbytes for x in jax.tree.leaves(w.state) if eqx.is_array(x))
        t0 = time.perf_counter()
        jax.block_until_ready(w())
        first = time.perf_counter() - t0
        for _ in range(2):
            jax.block_until_ready(w())
        rt = measure_call(w, "jax", jax.block_until_ready)
        static_peak = alias = None
        if dispatch == "cached":
            model, opt = w.state
            b, key = w.batches[0]
            st = analyse_jitted(
                make_train_step(mlm_loss, dispatch="cached", donate=donate), model, opt, b, key
            )
            static_peak, alias = st.peak_bytes, st.extra["alias_bytes"]
        rows.append(
            {"batch": bshape, "dispatch": dispatch, "donate": donate, "state": state_bytes,
             "peak": rt.peak_bytes, "exact": rt.exact, "retained": rt.retained_bytes,
             "static_peak": static_peak, "alias": alias, "first_s": first}
        )  # fmt: skip
        print(
            f"| {bshape} | {dispatch} | {donate} | {mib(state_bytes)} | {mib(rt.peak_bytes)} | "
            f"{rt.exact} | {mib(rt.retained_bytes)} | {mib(static_peak)} | {mib(alias)} | "
            f"{first:.1f} |",
            flush=True,
        )
        del w
    RESULTS["bert"] = rows
    print("\nDonation (runtime peak, donate=False minus donate=True, vs state bytes):")
    for r in rows:
        if r["donate"]:
            off = [
                o for o in rows
                if o["batch"] == r["batch"] and o["dispatch"] == r["dispatch"] and not o["donate"]
            ]  # fmt: skip
            if off:
                d = off[0]["peak"] - r["peak"]
                print(
                    f"- {r['batch']} {r['dispatch']}: {mib(d)} MiB less with donation "
                    f"(state {mib(r['state'])} MiB, ratio {d / r['state']:.2f})"
                )


def part_spd(budget: float) -> None:
    import torch

    from trainfast.spd._bench import ablate, format_table

    print("\n## trainfast.spd ablation: peak memory (CUDA allocated + graph pool, timed windows)\n")
    rows = []
    for workload in ("resid_mlp1", "resid_mlp3"):
        if left(budget) < 15:
            print(f"{workload}: skipped (time budget)")
            continue
        rows += ablate(
            workload, device="cuda", warmup=6, n=10, repeats=2,
            only=["baseline", "cuda_graphs", "bf16", "compile"],
            budget_s=max(5.0, left(budget) / 2 - 10),
        )  # fmt: skip
        torch.cuda.empty_cache()
    print(format_table(rows))
    RESULTS["spd"] = [
        {"workload": r.workload, "config": r.name, "ms": None if r.step_s is None else 1e3 * r.step_s,
         "peak_bytes": r.peak_bytes, "error": r.error}
        for r in rows
    ]  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="torch,jax,bert,spd")
    p.add_argument("--budget-s", type=float, default=220.0)
    p.add_argument("--json", default=None)
    p.add_argument("--smoke", action="store_true", help="tiny sizes (a CPU check of the script)")
    p.add_argument(
        "--bert-rows",
        default=None,
        help="only these bert rows, e.g. 32x512:jit,1x8:cached:nodonate",
    )
    args = p.parse_args()
    global SMOKE
    SMOKE = args.smoke
    bert_rows = parse_bert_rows(args.bert_rows) if args.bert_rows else BERT_ROWS
    parts = args.parts.split(",")
    print(f"# h200_memory: parts {parts}, budget {args.budget_s:g} s")
    for name in parts:
        if left(args.budget_s) < 10:
            print(f"\n## {name}: skipped (time budget)")
            continue
        t0 = time.perf_counter()
        try:
            {"torch": part_torch, "jax": part_jax}.get(name, lambda: None)()
            if name == "bert":
                part_bert(args.budget_s, bert_rows)
            if name == "spd":
                part_spd(args.budget_s)
        except Exception as e:  # report and go on: one broken part must not hide the others
            import traceback

            traceback.print_exc()
            print(f"\n{name}: ERROR {type(e).__name__}: {e}")
        print(f"\n({name}: {time.perf_counter() - t0:.0f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(RESULTS, fh, indent=1, default=str)
    print(f"\n# total {time.perf_counter() - START:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
