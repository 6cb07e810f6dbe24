"""Running `perfsuite ab`'s pytest processes: one run, a side-by-side pair.

A run is one `pytest --perf --perf-json=...` in a revision's worktree (`perfsuite.ab._git`),
with that revision's code first on its import path (`perfsuite.ab._run_env`), reduced to one
robust number per measured series (`perfsuite._results.run_statistics`). `run_pair` starts
the two runs of a pair together and lets them take turns (`perfsuite.ab._turns`); `run_once`
runs one alone (`--sequential`). The loop over pairs is `perfsuite.ab._loop`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _count_gate
from .._errors import AbError, SchemaError
from .._memory_gate import memory_readings
from .._results import load_document, run_statistics
from . import _turns as turns
from ._run_env import pytest_command, run_env


if TYPE_CHECKING:
    from ._config import AbConfig


#: Set while `perfsuite ab` stops (interrupted, terminated, or a pair failed) with pairs
#: running in other threads (`--jobs`): each stops and kills its runs, instead of running on.
stopping = threading.Event()


@dataclass
class RunResult:
    side: str
    index: int
    seconds: float
    returncode: int
    stats: dict[str, tuple[str, float]]
    #: Memory readings per memory series (`perfsuite._memory_gate.memory_readings`).
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The run's counts (`_count_gate.count_values`) and the toolchain they depend on.
    counts: dict[str, Any] = field(default_factory=dict)
    toolchain: dict[str, Any] = field(default_factory=dict)


def _result(
    cfg: AbConfig, side: str, index: int, tree: Path, cmd: list[str], json_path: Path,
    returncode: int, output: str, seconds: float,
) -> RunResult:  # fmt: skip
    tail = "\n".join(output.strip().splitlines()[-25:])
    if returncode not in (0, 1):
        raise AbError(
            f"{side} run {index + 1} in {tree} exited with {returncode} "
            f"(pytest: 2 interrupted, 3 internal error, 4 usage error, 5 no tests collected).\n"
            f"command: {' '.join(cmd)}\n{tail}"
        )
    try:
        doc = load_document(json_path)
    except SchemaError as exc:
        raise AbError(f"{side} run {index + 1} wrote no usable results: {exc}\n{tail}") from None
    return RunResult(
        side, index, seconds, returncode, run_statistics(doc, cfg.stat),
        memory=memory_readings(doc), counts=_count_gate.count_values(doc),
        toolchain=_count_gate.toolchain(doc),
    )  # fmt: skip


def run_once(cfg: AbConfig, side: str, index: int, tree: Path, out_dir: Path) -> RunResult:
    """One run on its own (no partner): what `run_pair` does for each side, sequentially."""
    json_path = out_dir / f"{side.lower()}-{index:03d}.json"
    env = run_env(tree, cfg.repo)
    cmd = pytest_command(cfg, json_path, env)
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=cfg.run_timeout_s
        )
    except subprocess.TimeoutExpired:
        raise AbError(
            f"{side} run {index + 1} ({' '.join(cmd)}) took longer than {cfg.run_timeout_s:g} s."
        ) from None
    seconds = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    return _result(cfg, side, index, tree, cmd, json_path, proc.returncode, output, seconds)


def pair_cpu(index: int, pin: bool) -> int | None:
    """The CPU both runs of pair `index` are pinned to, rotating over the allowed ones."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[cpu_slot(index, len(allowed))]


def cpu_slot(index: int, cpus: int) -> int:
    """Which of `cpus` CPUs pair `index` gets.

    Plain rotation (`index % cpus`) on an even number of CPUs would tie the CPU to which side
    measures first (that alternates with the pair's parity): on two CPUs BASE would always
    lead on one of them. Shifting the rotation by one every `cpus` pairs gives each CPU both
    orders equally often. Pairs that run at once (`--jobs` <= `cpus`, in batches starting at
    multiples of the batch size) still get different CPUs.
    """
    if cpus % 2:
        return index % cpus  # already alternates who leads on every CPU
    return (index + index // cpus) % cpus


def run_pair(
    cfg: AbConfig, index: int, order: tuple[str, str], trees: dict[str, Path], out_dir: Path
) -> list[RunResult]:
    """Both runs of pair `index` at once, taking turns (`perfsuite.ab._turns.PairTurns`).

    `order[0]` measures first. When one run exits, the other is told to go on alone.
    """
    procs: dict[str, tuple[subprocess.Popen, list[str], Path, Any, float]] = {}
    cpu = pair_cpu(index, cfg.pin)
    with turns.PairTurns(out_dir, f"{index:03d}", order, cpu) as pair:
        try:
            for side in order:
                json_path = out_dir / f"{side.lower()}-{index:03d}.json"
                env = {**run_env(trees[side], cfg.repo), **pair.env(side)}
                cmd = pytest_command(cfg, json_path, env)
                log = open(out_dir / f"{side.lower()}-{index:03d}.log", "w+")  # noqa: SIM115
                proc = subprocess.Popen(
                    cmd, cwd=trees[side], env=env, stdout=log, stderr=subprocess.STDOUT,
                    text=True,
                )  # fmt: skip
                if cpu is not None and cfg.jobs > 1:
                    # With other pairs running at once, start-up stays on this pair's CPU
                    # too, so it never competes with another pair's timed rounds.
                    with contextlib.suppress(OSError):
                        os.sched_setaffinity(proc.pid, {cpu})
                procs[side] = (proc, cmd, json_path, log, time.perf_counter())
            results: dict[str, RunResult] = {}
            deadline = time.perf_counter() + cfg.run_timeout_s
            while len(results) < len(order):
                for side in order:
                    proc, cmd, json_path, log, started = procs[side]
                    if side in results or proc.poll() is None:
                        continue
                    seconds = time.perf_counter() - started
                    # The partner may be waiting for a turn this run will never hand over.
                    pair.exited(side)
                    log.seek(0)
                    results[side] = _result(
                        cfg, side, index, trees[side], cmd, json_path, proc.returncode,
                        log.read(), seconds,
                    )  # fmt: skip
                if stopping.is_set():
                    raise AbError(f"pair {index + 1} stopped: `perfsuite ab` is stopping.")
                if time.perf_counter() > deadline:
                    raise AbError(
                        f"pair {index + 1} ({' and '.join(order)}) took longer than "
                        f"{cfg.run_timeout_s:g} s."
                    )
                time.sleep(0.005)
            return [results[side] for side in order]
        finally:
            # Before the FIFOs go (leaving the `with`): no run is left waiting on them.
            for proc, _, _, log, _ in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                log.close()
