"""The SPD flag ablation on the LM workload (issue 18 section 3), on one GPU.

Run from the tree (no install), on the H200:

    PYTHONPATH=src:.:.gpu-site python scripts/h200_spd_lm.py [--budget-s 200] [--batch-size 64]

Workload `gpt2_simple` (`trainfast.spd._lm`): an HF GPT-2 with upstream's gpt2_simple-1.25M
shapes (4 layers, 4 heads, width 128, vocab 4019, 512 positions; random weights), all 16
Conv1Ds decomposed through hooks (C=1200, shared_mlp CI functions [1000]), batches of 64 x 512
int64 tokens from a CPU DataLoader, upstream's LM losses (KL; importance minimality, subset
stochastic recon, subset PGD recon, faithfulness). Evaluation is off in every row (as in
`make_trainer`).

Prints, as Markdown:

1. the ablation table: baseline, all flags on (`LMWorkload.fastest_flags`: `Flags.fastest` +
   bf16), all exact flags, each flag alone, all flags on in fp32 (no bf16); ms per
   step (median of 3 windows of 5 steps after warm-up, synchronized), speedup over the
   baseline, peak memory (`torch.cuda.max_memory_allocated` over the timed windows);
2. the side-by-side speedup of all flags on over the baseline, measured by
   `perfsuite.compare` (the two trainers alternate round by round) with its 99% interval.

If the all-on set fails (a flag that cannot run this model), the script says why and
retries without `cuda_graphs`, then without `compile`, and compares the set that ran.
Rows that do not fit in `--budget-s` are listed as skipped (the compiling rows come last).
Finishes in about 4 minutes at most with the default budget, if the all-on set compiles in
about a minute; `--skip compile` drops `compile` from every row otherwise. `--device cpu
--workload gpt2_tiny` is a dry run of the script on a CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import statistics
import sys
import time
import traceback

import torch


_SINGLE = (
    "bf16",
    "cuda_graphs",
    "no_host_syncs",
    "persistent_hooks",
    "cache_target_weights",
    "fused_adamw",
    "data_workers",
    "pin_memory",
    "non_blocking",
    "prefetch",
    "async_checkpoint",
    "lean_gc",
    "explicit_forward",  # falls back to persistent hooks on an HF model (see _lm.py)
    "fused_unmasked",  # no unmasked term in the LM losses: a no-op
    "fused_ci_fn",  # acts on `mlp` CI functions; the LM uses shared_mlp: a no-op
    "compile",
)


def _without(flags, skip):
    return dataclasses.replace(flags, **dict.fromkeys(skip, False))


def _free(trainer, flags) -> None:
    if trainer is not None:
        try:  # a failed capture can leave a trainer half-built: free what there is anyway
            trainer.close()
        except Exception:
            traceback.print_exc()
    del trainer
    if flags is not None and flags.compile:
        torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _row(workload, name, flags, warmup, device, keep=False):
    """Time one configuration; returns (AblationRow, trainer or None)."""
    from trainfast.spd import make_trainer
    from trainfast.spd._bench import AblationRow, time_steps

    trainer = None
    try:
        trainer = make_trainer(workload, flags=flags, device=device)
        memory: dict = {}
        samples = time_steps(trainer, warmup=warmup, n=5, repeats=3, memory=memory)
        row = AblationRow(
            workload.name,
            name,
            flags,
            statistics.median(samples),
            max(samples) - min(samples),
            peak_bytes=memory.get("peak_bytes"),
        )
    except Exception as e:  # one broken flag must not hide the others
        traceback.print_exc()
        msg = f"{type(e).__name__}: {e}".splitlines()[0][:160]
        _free(trainer, flags)
        return AblationRow(workload.name, name, flags, None, None, msg), None
    if keep:
        return row, trainer
    _free(trainer, flags)
    return row, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=200.0, help="seconds for all rows")
    parser.add_argument("--batch-size", type=int, default=None, help="override the batch (64)")
    parser.add_argument("--compare-s", type=float, default=20.0, help="side-by-side budget")
    parser.add_argument("--workload", default="gpt2_simple", help="an LM workload")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the script")
    parser.add_argument(
        "--skip", default="", help="comma-separated flags to leave out of every row"
    )
    args = parser.parse_args()
    device = args.device
    skip = {f for f in args.skip.split(",") if f}
    from trainfast.spd import Flags

    Flags.parse(sorted(skip))  # an unknown name raises here, naming the known flags
    if not device.startswith("cuda"):
        torch.set_num_threads(1)  # a dry run on a shared CPU: no spinning OpenMP threads
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("error: needs a CUDA device")
        return 2
    import transformers

    from perfsuite import Settings, compare
    from trainfast.spd import Flags, get_workload
    from trainfast.spd._bench import format_table

    start = time.perf_counter()
    wl = get_workload(args.workload)
    if args.batch_size is not None:
        wl = dataclasses.replace(wl, config=wl.config.replace({"batch_size": args.batch_size}))
    s, cfg = wl.shape, wl.config
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    print(f"# device: {name}, torch {torch.__version__}, transformers {transformers.__version__}")
    print(
        f"# workload {wl.name}: GPT-2 {s.n_layer}L {s.n_head}H d{s.n_embd} vocab {s.vocab_size}, "
        f"batch {cfg.batch_size} x {s.seq_len} tokens, {len(cfg.target_module_paths)} Conv1Ds, "
        f"C={cfg.C}, {cfg.ci_fn_type}{list(cfg.ci_fn_hidden)}, losses {list(cfg.loss_coeffs)}; "
        f"random target; eval off",
        flush=True,
    )

    rows = []

    def add(row):
        rows.append(row)
        text = row.error or f"{1e3 * row.step_s:.1f} ms/step"
        print(f"# {row.name}: {text} ({time.perf_counter() - start:.0f} s)", flush=True)

    # Each row's trainer is alone on the device while it is timed (peak memory is its own);
    # the side-by-side then builds a second baseline trainer next to the all-on one.
    add(_row(wl, "baseline", Flags(), 3, device)[0])
    fast_flags, fast = _without(wl.fastest_flags(device), skip), None
    for name, flags in (
        ("all_on", fast_flags),
        ("all_on_no_graphs", dataclasses.replace(fast_flags, cuda_graphs=False)),
        ("all_on_no_graphs_no_compile", dataclasses.replace(fast_flags, cuda_graphs=False, compile=False)),
    ):  # fmt: skip
        row, fast = _row(wl, name, flags, 6, device, keep=True)
        add(row)
        if fast is not None:
            fast_name, fast_flags = name, flags
            break
    ratio, base = None, None
    if fast is not None:
        try:
            from trainfast.spd import make_trainer

            base = make_trainer(wl, flags=Flags(), device=device)
            # 20 paired rounds (~10 s here): the 99% sign-test interval is then informative.
            # No counts: counting runs a call under a torch dispatch mode, which would make a
            # compiled (not graph-captured) all-on set compile again, untimed but for long.
            settings = Settings.quick(budget_s=args.compare_s, min_rounds=20, counts=False)
            cmp = compare(settings=settings, all_on=fast.step, baseline=base.step)
            ratio = cmp.ratio("all_on", over="baseline")
        except Exception:
            traceback.print_exc()
    _free(fast, fast_flags)
    _free(base, None)
    print(f"# side by side done ({time.perf_counter() - start:.0f} s)", flush=True)

    # The rows that compile come last (each compiles anew after a reset): the budget cuts them
    # first. all_on_fp32 says how much of all_on is bf16.
    fp32 = _without(dataclasses.replace(wl.fastest_flags(device), bf16=False), skip)
    singles = [(name, Flags.parse([name])) for name in _SINGLE if name not in skip]
    configs = [
        ("all_exact", _without(Flags.exact(), skip)),
        *[c for c in singles if c[0] != "compile"],
        ("all_on_fp32", fp32),
        *[c for c in singles if c[0] == "compile"],
    ]
    for name, flags in configs:
        if time.perf_counter() - start > args.budget_s:
            from trainfast.spd._bench import AblationRow

            add(AblationRow(wl.name, name, flags, None, None, "skipped (time budget)"))
            continue
        warmup = 6 if (flags.cuda_graphs or flags.compile) else 3
        add(_row(wl, name, flags, warmup, device)[0])

    print("\n## Ablation (ms per step, median of 3 windows of 5 steps)\n")
    print(format_table(rows))
    print("\n## Side by side (perfsuite.compare, rounds alternate)\n")
    if ratio is None:
        print("not measured (see the errors above)")
    else:
        print(
            "| fast set | flags | speedup | 99% interval | rounds | ms/step fast | ms/step base |"
        )
        print("|---|---|---|---|---|---|---|")
        print(
            f"| {fast_name} | {','.join(fast_flags.on())} | {ratio.estimate:.2f}x | "
            f"[{ratio.low:.2f}, {ratio.high:.2f}] | {ratio.rounds} | "
            f"{1e3 * ratio.a_per_call_s:.1f} | {1e3 * ratio.b_per_call_s:.1f} |"
        )
    print(f"\n# total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
