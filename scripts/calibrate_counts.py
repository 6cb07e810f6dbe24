"""Calibrate the exact gate: A/A sessions never differ, one more Python call is always caught.

Usage:

    PYTHONPATH=.:src python scripts/calibrate_counts.py [--sessions 100] [--jobs 2] [--json PATH]

A session builds fresh workloads (a new model, a newly jitted and compiled step) and counts,
with `perfsuite._counts.measure_counts`, one call of each. Sessions run in a few fresh
Python processes (`--processes`, each its own hash seed, addresses and import order, as
`pytest --perf` sessions are; a process starting JAX and torch costs ~20 s on the 2-core VM,
so each holds `--per-process` sessions). The workloads:

- `loop`: a pure-Python loop (200 calls of a small function);
- `eqx_step`: an `eqx.filter_jit` training step of a small MLP with optax AdamW, with the
  state threaded through (the host dispatch cost of P2, and XLA's cost analysis);
- `torch_step`: a torch MLP training step (forward, backward, SGD): FlopCounterMode and
  aten ops.

and the same three with one extra Python call per step (`B`: a no-op function called once
more). Session 0 is the baseline; every other session's `A` counts are judged against it by
the gate itself (`_count_gate.judge`, exactly as `--perf-compare` judges them): any
difference is an A/A false alarm. Every session's `B` counts are judged against the
baseline's `A`: a regression naming `python_calls` with delta +1 is a catch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


CHILD = r"""
import json, sys
from perfsuite._counts import measure_counts

def noop():
    return None

def one(x):
    return x + 1

def loop(extra):
    def run():
        s = 0
        for i in range(200):
            s = one(s)
        if extra:
            noop()
        return s
    return run

import jax, jax.numpy as jnp, equinox as eqx, optax

def eqx_step(extra):
    model = eqx.nn.MLP(16, 4, 32, 2, key=jax.random.key(0))
    tx = optax.adamw(1e-3)
    state = [model, tx.init(eqx.filter(model, eqx.is_array))]
    x = jnp.ones((8, 16)); y = jnp.zeros((8, 4))

    @eqx.filter_jit
    def step(model, opt, x, y):
        loss, g = eqx.filter_value_and_grad(lambda m: jnp.mean((jax.vmap(m)(x) - y) ** 2))(model)
        updates, opt = tx.update(g, opt, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt

    def run():
        state[:] = step(state[0], state[1], x, y)
        if extra:
            noop()
        return state[0]
    run(); run()
    return run

import torch

def torch_step(extra):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    opt = torch.optim.SGD(net.parameters(), lr=1e-2)
    x = torch.ones(8, 16); y = torch.zeros(8, 4)

    def run():
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        if extra:
            noop()
        return loss
    run(); run()
    return run

sessions = []
for _ in range(int(sys.argv[1])):
    out = {}
    for name, make in (("loop", loop), ("eqx_step", eqx_step), ("torch_step", torch_step)):
        for side, extra in (("A", False), ("B", True)):
            fn = make(extra)  # a fresh workload: new model, new jitted step (compiled anew)
            fn()
            c = measure_counts(fn).to_json()
            out[f"{name}:{side}"] = {"values": c["values"], "unstable": sorted(c["unstable"])}
    sessions.append(out)
print(json.dumps(sessions))
"""


def process(i: int, root: Path, sessions: int) -> list[dict]:
    """`sessions` sessions in one fresh process (its own hash seed, as pytest runs get)."""
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'src'}"}
    env.pop("PYTHONHASHSEED", None)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(sessions)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"process {i} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5, help="fresh Python processes")
    parser.add_argument(
        "--per-process", type=int, default=21, help="sessions (fresh workloads) per process"
    )
    parser.add_argument("--jobs", type=int, default=2, help="processes at once")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(root), str(root / "src")]
    from perfsuite._count_gate import judge

    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda i: process(i, root, args.per_process), range(args.processes)))
    docs = [doc for run in runs for doc in run]
    base = docs[0]
    workloads = sorted({k.split(":")[0] for k in base})
    rows = []
    for w in workloads:
        baseline = {w: base[f"{w}:A"]}
        false_alarms = caught = unstable = 0
        deltas = set()
        for doc in docs[1:]:
            aa = judge({w: doc[f"{w}:A"]}, [baseline], changed=[], strict=False)
            false_alarms += bool(aa["entries"])
            unstable += bool(aa["ungated"])
            ab = judge({w: doc[f"{w}:B"]}, [baseline], changed=[], strict=False)
            hits = [e for e in ab["entries"] if e["verdict"] == "regression"]
            if any(e["counter"] == "python_calls" and e["delta"] == 1 for e in hits):
                caught += 1
            deltas.update((e["counter"], e["delta"]) for e in ab["entries"])
        rows.append(
            {
                "workload": w,
                "counters": len(base[f"{w}:A"]["values"]),
                "python_calls": base[f"{w}:A"]["values"]["python_calls"],
                "aa_sessions": len(docs) - 1,
                "aa_with_a_difference": false_alarms,
                "aa_with_ungated_counters": unstable,
                "plus_one_caught": caught,
                "plus_one_changes": sorted(deltas),
            }
        )
    print(
        f"{len(docs)} sessions ({args.processes} processes x {args.per_process}) in "
        f"{time.perf_counter() - started:.0f} s\n"
    )
    print("| workload | counters | python_calls | A/A sessions | A/A with a difference | "
          "ungated | +1 call caught | what changed with +1 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['workload']} | {r['counters']} | {r['python_calls']} | {r['aa_sessions']} | "
            f"{r['aa_with_a_difference']} | {r['aa_with_ungated_counters']} | "
            f"{r['plus_one_caught']}/{r['aa_sessions']} | "
            + ", ".join(f"{k} {d:+d}" for k, d in r["plus_one_changes"])
            + " |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "baseline": base}, indent=1))


if __name__ == "__main__":
    main()
