"""CLI: `python -m trainfast.spd --workload resid_mlp3 --ablate [--device cuda]`.

`--ablate` prints the step time and speedup of the baseline, each flag alone, all exact flags
and all flags on, as a Markdown table (evaluation off; see `make_trainer`). Without
`--ablate` it times one configuration (`--flags a,b`).

`--train-target PATH` instead trains the workload's target with upstream's recipe (`--seed`,
`--device`) and saves its state dict to PATH; the shipped TMS 5-2 target is
`python -m trainfast.spd --workload tms_5-2 --seed 7 --train-target
src/trainfast/spd/targets/tms_5-2_seed7.pth`.

`--decompose STEPS` runs SPD for STEPS steps on the workload's trained target (`--flags`,
`--seed`, `--device`, `--batch-size`, `--lr`) and prints which components are alive, the
feature each answers to and its cosine to the target (`evaluate_decomposition`).
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from ._bench import AblationRow, ablate, format_table, time_steps
from ._decompose import decompose
from ._flags import Flags
from ._lm import LM_WORKLOADS
from ._loop import make_trainer
from ._trained_targets import save_target, train_target
from ._workloads import WORKLOADS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainfast.spd", description=__doc__)
    p.add_argument(
        "--workload",
        action="append",
        required=True,
        help=f"one of {', '.join([*WORKLOADS, *LM_WORKLOADS])}; repeat for several",
    )
    p.add_argument("--ablate", action="store_true", help="baseline, each flag, all on")
    p.add_argument("--flags", default="", help="comma-separated flags to switch on")
    p.add_argument("--only", default="", help="with --ablate: comma-separated configs to run")
    p.add_argument("--device", default="cpu", help="Default: %(default)r")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps. Default: %(default)r")
    p.add_argument("--steps", type=int, default=20, help="steps per window. Default: %(default)r")
    p.add_argument("--repeats", type=int, default=3, help="windows. Default: %(default)r")
    p.add_argument("--batch-size", type=int, default=None, help="override the config's batch")
    p.add_argument("--seed", type=int, default=0, help="Default: %(default)r")
    p.add_argument(
        "--train-target",
        metavar="PATH",
        default=None,
        help="train the workload's target with upstream's recipe and save it to PATH",
    )
    p.add_argument(
        "--decompose",
        metavar="STEPS",
        type=int,
        default=None,
        help="run SPD for STEPS steps on the trained target and evaluate the decomposition",
    )
    p.add_argument("--lr", type=float, default=None, help="with --decompose: override the lr")
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="with --ablate: seconds per workload before the rest is skipped",
    )
    return p


def _fmt(row: AblationRow) -> str:
    return row.error or f"{1e3 * row.step_s:.2f} ms/step"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    known = [*WORKLOADS, *LM_WORKLOADS]
    for w in args.workload:
        if w not in known:
            print(f"error: unknown workload {w!r}; known workloads: {', '.join(known)}")
            return 2
    device = args.device
    if args.train_target is not None:
        return _train_targets(args.workload, args.seed, device, args.train_target)
    overrides = {} if args.batch_size is None else {"batch_size": args.batch_size}
    if args.decompose is not None:
        if args.lr is not None:
            overrides["lr"] = args.lr
        flags = Flags.parse([f for f in args.flags.split(",") if f])
        for workload in args.workload:
            _decompose(workload, args.decompose, flags, args.seed, device, overrides)
        return 0
    if device.startswith("cuda"):
        print(f"# device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    else:
        print(f"# device: cpu ({torch.get_num_threads()} threads), torch {torch.__version__}")
    print("# targets: random (step time depends only on the shapes)")
    rows: list[AblationRow] = []
    for workload in args.workload:
        if args.ablate:
            only = [s for s in args.only.split(",") if s] or None
            new = ablate(
                workload,
                device=device,
                warmup=args.warmup,
                n=args.steps,
                repeats=args.repeats,
                seed=args.seed,
                only=only,
                overrides=overrides,
                budget_s=args.budget_s,
                on_row=lambda r: print(f"# {r.workload} {r.name}: {_fmt(r)}", flush=True),
            )
        else:
            flags = Flags.parse([f for f in args.flags.split(",") if f])
            trainer = make_trainer(workload, flags=flags, device=device, overrides=overrides)
            memory: dict = {}
            samples = time_steps(
                trainer, warmup=args.warmup, n=args.steps, repeats=args.repeats, memory=memory
            )
            trainer.close()
            name = ",".join(flags.on()) or "baseline"
            spread = max(samples) - min(samples)
            median = statistics.median(samples)
            peak = memory.get("peak_bytes")
            new = [AblationRow(workload, name, flags, median, spread, peak_bytes=peak)]
        rows.extend(new)
        print(format_table(new), flush=True)
    if len(args.workload) > 1:
        print("\n## all workloads\n" + format_table(rows))
    return 0


def _decompose(
    workload: str, steps: int, flags: Flags, seed: int, device: str, overrides: dict
) -> None:
    d = decompose(workload, steps, flags=flags, seed=seed, device=device, overrides=overrides)
    name = ",".join(flags.on()) or "baseline"
    last = d.trainer.history[-1]
    losses = ", ".join(f"{k} {v:.3g}" for k, v in last.items() if not k.startswith("l0/"))
    print(f"# {workload} seed {seed} {name}: {steps} steps in {d.seconds:.1f} s; {losses}")
    for path, m in d.modules.items():
        cos = m.min_cosine()
        cos_text = "" if cos is None else f", min cosine {cos:.4f}"
        print(
            f"# {path}: {m.n_live} live, one feature each: {m.one_feature_each()}, "
            f"covers every feature once: {m.covers_features_once(len(m.ci))}{cos_text}"
        )
        print(f"#   {m.summary()}")


def _train_targets(workloads: list[str], seed: int, device: str, path: str) -> int:
    if len(workloads) != 1:
        print("error: --train-target takes exactly one --workload")
        return 2
    trained = train_target(workloads[0], seed=seed, device=device)
    save_target(trained.model, path)
    first, last = trained.losses[0][1], trained.losses[-1][1]
    print(f"# {workloads[0]} seed {seed}: loss {first:.5f} -> {last:.5f}, ", end="")
    print(f"final (10 batches) {trained.final_loss:.6f}; saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
