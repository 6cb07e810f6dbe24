"""`perfsuite calibrate counts`: the exact gate's A/A sessions never differ, one more Python
call is always caught.

(Formerly `scripts/calibrate_counts.py`, now a wrapper of this; same code, moved.)

    perfsuite calibrate counts [--processes 5] [--per-process 21] [--jobs 2] [--json PATH]

A session builds fresh workloads (a new model, a newly jitted and compiled step) and counts,
with `perfsuite._counts.measure_counts`, one call of each. Sessions run in a few fresh
Python processes (`--processes`, each its own hash seed, addresses and import order, as
`pytest --perf` sessions are; a process starting JAX and torch costs ~20 s on the 2-core VM,
so each holds `--per-process` sessions). The workloads (JAX, Equinox, optax and torch must be
installed):

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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .._errors import PerfUsageError
from ._rates import markdown_table, progress, write_json


#: The directory the `perfsuite` package is imported from: a child process must import the
#: same perfsuite as this one (a checkout shadowing the installed one included).
_IMPORT_ROOT = Path(__file__).resolve().parents[2]

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


def process(i: int, sessions: int) -> list[dict[str, Any]]:
    """`sessions` sessions in one fresh process (its own hash seed, as pytest runs get)."""
    path = [str(_IMPORT_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    env.pop("PYTHONHASHSEED", None)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(sessions)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-4:])
        raise PerfUsageError(f"calibrate counts: process {i} failed ({proc.returncode}): {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rows_from(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per workload: session 0 is the baseline; every other session's `A` is judged against
    it (a difference is a false alarm) and its `B` too (`python_calls` +1 is a catch)."""
    from .._count_gate import judge

    base = docs[0]
    rows = []
    for w in sorted({k.split(":")[0] for k in base}):
        baseline = {w: base[f"{w}:A"]}
        false_alarms = caught = unstable = 0
        deltas: set[tuple[str, int]] = set()
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
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    header = ["workload", "counters", "python_calls", "A/A sessions", "A/A with a difference"]
    header += ["ungated", "+1 call caught", "what changed with +1"]
    return markdown_table(
        header,
        (
            [
                r["workload"],
                r["counters"],
                r["python_calls"],
                r["aa_sessions"],
                r["aa_with_a_difference"],
                r["aa_with_ungated_counters"],
                f"{r['plus_one_caught']}/{r['aa_sessions']}",
                ", ".join(f"{k} {d:+d}" for k, d in r["plus_one_changes"]),
            ]
            for r in rows
        ),
    )


def add_parser(sub: Any) -> None:
    from .._values import parse_path, parse_positive_int

    p = sub.add_parser(
        "counts",
        help="A/A and +1-call sessions of the exact (counts) gate, in fresh processes",
        description="Fresh processes count fresh workloads (a Python loop, an Equinox and a "
        "torch training step), with and without one more Python call, and judge each "
        "session against the first with the counts gate: A/A differences and +1 catches "
        "(Markdown). Needs JAX, Equinox, optax and torch. Formerly scripts/calibrate_counts.py.",
    )
    p.add_argument(
        "--processes", type=parse_positive_int, default=5, help="fresh Python processes (5)"
    )
    p.add_argument(
        "--per-process",
        type=parse_positive_int,
        default=21,
        help="sessions (fresh workloads) per process (21)",
    )
    p.add_argument("--jobs", type=parse_positive_int, default=2, help="processes at once (2)")
    p.add_argument("--json", type=parse_path, default=None, help="write the rows and baseline here")


def run(args: argparse.Namespace, write: Callable[[str], None]) -> int:
    if args.processes * args.per_process < 2:
        raise PerfUsageError(
            "calibrate counts: --processes x --per-process must be >= 2 (session 0 is the "
            f"baseline, the others are judged), got {args.processes} x {args.per_process}."
        )
    started = time.perf_counter()
    done = []

    def one(i: int) -> list[dict[str, Any]]:
        out = process(i, args.per_process)
        done.append(i)
        progress(f"[calibrate counts] process {len(done)}/{args.processes} done")
        return out

    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(one, range(args.processes)))
    docs = [doc for run in runs for doc in run]
    rows = rows_from(docs)
    lines = [
        f"{len(docs)} sessions ({args.processes} processes x {args.per_process}) in "
        f"{time.perf_counter() - started:.0f} s",
        "",
        *table(rows),
    ]
    write("\n".join(lines))
    write_json(args.json, {"rows": rows, "baseline": docs[0]})
    return 0
