"""Running `perfsuite ab`'s pytest processes: worktrees, one run, a side-by-side pair.

A run is one `pytest --perf --perf-json=...` in a revision's worktree, reduced to one robust
number per measured series (`run_statistics`). `run_pair` starts the two runs of a pair
together and lets them take turns (`perfsuite._turns`); `run_once` runs one alone
(`--sequential`). The statistics and the loop over pairs are in `perfsuite._ab`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _turns as turns
from ._errors import AbError as AbError
from ._errors import SchemaError
from ._machine import GitError, git
from ._memory_gate import memory_readings
from ._results import iter_series, load_document


if TYPE_CHECKING:
    from ._ab_config import AbConfig


#: Set while `perfsuite ab` stops (interrupted, terminated, or a pair failed) with pairs
#: running in other threads (`--jobs`): each stops and kills its runs, instead of running on.
stopping = threading.Event()


def run_statistics(doc: dict[str, Any], stat: str | None) -> dict[str, tuple[str, float]]:
    """One robust number per series of one run: `{series id: (statistic, seconds)}`.

    `stat=None` takes the median of the rounds (or steps) for every kind: on the CI VM it
    varied less from process to process than the min (2-4% vs 3-7% for one loop), which
    follows single unusually fast rounds.
    """
    out: dict[str, tuple[str, float]] = {}
    for s in iter_series(doc):
        if not s.timed:
            continue
        x = np.asarray(s.samples, dtype=float)
        x = x[np.isfinite(x) & (x > 0)]
        if x.size == 0:
            continue
        name = stat or "median"
        value = {"min": np.min, "median": np.median, "mean": np.mean}[name](x)
        out[s.id] = (name, float(value))
    return out


def _git(repo: Path, *args: str) -> str:
    """`_machine.git` with its failure as the verdict's error (worktrees can take a while)."""
    try:
        return git(repo, *args, timeout=120)
    except GitError as exc:
        raise AbError(str(exc)) from None


def resolve_commit(repo: Path, rev: str, arg: str) -> str:
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except AbError:
        raise AbError(
            f"`{arg}`={rev!r} is not a commit of the repository at {repo} "
            "(expected a branch, tag or commit, e.g. 'main' or 'HEAD~1')."
        ) from None


@contextlib.contextmanager
def worktrees(repo: Path, revs: dict[str, str]) -> Iterator[dict[str, Path]]:
    """Detached worktrees of `revs` (`{side: commit}`) in a temporary folder, removed after."""
    tmp = Path(tempfile.mkdtemp(prefix="perfsuite-ab-"))
    made: list[Path] = []
    try:
        out = {}
        for side, commit in revs.items():
            path = tmp / side.lower()
            _git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit)
            made.append(path)
            out[side] = path
        yield out
    finally:
        for path in made:
            with contextlib.suppress(AbError):
                _git(repo, "worktree", "remove", "--force", str(path))
        with contextlib.suppress(AbError):
            _git(repo, "worktree", "prune")
        shutil.rmtree(tmp, ignore_errors=True)


def _needs_plugin_flag(env: dict[str, str]) -> bool:
    """`-p perfsuite.plugin` only when the entry point will not load it (twice is an error)."""
    if env.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return True
    from importlib.metadata import entry_points

    return not any(ep.value == "perfsuite.plugin" for ep in entry_points(group="pytest11"))


def import_roots(repo: Path, tree: Path, path: list[str] | None = None) -> list[Path]:
    """Where a run in `tree` imports the project's own code from.

    The entries of this interpreter's import path (`path`, default `sys.path`) that lie in
    `repo` (an editable install's `.pth`, `PYTHONPATH`, the current directory) are mapped
    into `tree`: an editable install of the main checkout would otherwise make BASE import
    HEAD's code. A project not installed from `repo` gets `tree/src` when that folder holds
    a package (the src layout) and `tree` itself (the flat layout).
    """
    repo = repo.resolve()
    roots: list[Path] = []
    for entry in sys.path if path is None else path:
        p = Path(entry or ".").resolve()
        if p == repo or repo in p.parents:
            roots.append(tree / p.relative_to(repo))
    if not roots:
        src = tree / "src"
        if src.is_dir() and any((child / "__init__.py").is_file() for child in src.iterdir()):
            roots.append(src)
        roots.append(tree)
    return list(dict.fromkeys(roots))


@functools.lru_cache(maxsize=8)
def _toplevel(repo: Path) -> Path:
    return Path(_git(repo, "rev-parse", "--show-toplevel"))


def run_env(tree: Path, repo: Path | None = None) -> dict[str, str]:
    """Environment of one run: the worktree's own code first on the import path."""
    env = dict(os.environ)
    paths = [str(p) for p in import_roots(_toplevel(repo or tree), tree)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


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


def _command(cfg: AbConfig, json_path: Path, env: dict[str, str]) -> list[str]:
    cmd = [cfg.python, "-m", "pytest", "--perf", f"--perf-json={json_path}", "-q"]
    cmd += ["-p", "no:cacheprovider"]  # leave the measured tree untouched
    if _needs_plugin_flag(env):
        cmd += ["-p", "perfsuite.plugin"]
    return cmd + list(cfg.pytest_args)


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
    from . import _count_gate

    return RunResult(
        side, index, seconds, returncode, run_statistics(doc, cfg.stat),
        memory=memory_readings(doc), counts=_count_gate.count_values(doc),
        toolchain=_count_gate.toolchain(doc),
    )  # fmt: skip


def run_once(cfg: AbConfig, side: str, index: int, tree: Path, out_dir: Path) -> RunResult:
    """One run on its own (no partner): what `run_pair` does for each side, sequentially."""
    json_path = out_dir / f"{side.lower()}-{index:03d}.json"
    env = run_env(tree, cfg.repo)
    cmd = _command(cfg, json_path, env)
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
    """Both runs of pair `index` at once, taking turns (see the module docstring).

    `order[0]` measures first. When one run exits, the other is told to go on alone.
    """
    inbox = {side: out_dir / f"turns-{side.lower()}-{index:03d}" for side in order}
    fds = []
    procs: dict[str, tuple[subprocess.Popen, list[str], Path, Any, float]] = {}
    cpu = pair_cpu(index, cfg.pin)
    try:
        for path in inbox.values():
            os.mkfifo(path)
            # Held open here for the whole pair: a FIFO with no open end drops its data, and
            # a run may exit before its partner has opened the inbox we write to.
            fds.append(os.open(path, os.O_RDWR))
        for k, side in enumerate(order):
            other = order[1 - k]
            json_path = out_dir / f"{side.lower()}-{index:03d}.json"
            env = run_env(trees[side], cfg.repo)
            # The second in `order` hands the token over first, so the first measures first.
            spec = f"{inbox[side]}:{inbox[other]}:{k}" + ("" if cpu is None else f":{cpu}")
            env[turns.ENV] = spec
            env[turns.PARENT_ENV] = str(os.getpid())
            cmd = _command(cfg, json_path, env)
            log = open(out_dir / f"{side.lower()}-{index:03d}.log", "w+")  # noqa: SIM115
            proc = subprocess.Popen(
                cmd, cwd=trees[side], env=env, stdout=log, stderr=subprocess.STDOUT, text=True
            )
            if cpu is not None and cfg.jobs > 1:
                # With other pairs running at once, start-up stays on this pair's CPU too, so
                # it never competes with another pair's timed rounds.
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(proc.pid, {cpu})
            procs[side] = (proc, cmd, json_path, log, time.perf_counter())
        results: dict[str, RunResult] = {}
        deadline = time.perf_counter() + cfg.run_timeout_s
        while len(results) < len(order):
            for k, side in enumerate(order):
                proc, cmd, json_path, log, started = procs[side]
                if side in results or proc.poll() is None:
                    continue
                seconds = time.perf_counter() - started
                # The partner may be waiting for a turn this run will never hand over.
                os.write(fds[1 - k], turns.PARTNER_GONE)
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
        for proc, _, _, log, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
        for fd in fds:
            os.close(fd)
        for path in inbox.values():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
