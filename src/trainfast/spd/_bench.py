"""Step timing and the flag ablation (baseline, each flag alone, all on) behind the CLI."""

from __future__ import annotations

import gc
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._flags import CUDA_ONLY_FLAGS, Flags
from ._loop import Trainer, make_trainer


@dataclass
class AblationRow:
    """One configuration's timing: median seconds per step over `repeats` windows."""

    workload: str
    name: str
    flags: Flags
    step_s: float | None
    spread_s: float | None
    error: str | None = None
    #: Peak bytes allocated on the CUDA device during the timed windows (model, optimizer
    #: state and the steps' activations: what the configuration needs), None off CUDA.
    peak_bytes: int | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    trainer: Trainer, *, warmup: int, n: int, repeats: int, memory: dict | None = None
) -> list[float]:
    """Seconds per step, one sample per window of `n` steps after `warmup` untimed steps.

    Windows are synchronized at both ends, so asynchronous modes are charged for GPU work.
    Warm-up covers compilation and (with `cuda_graphs`) the eager steps and the capture.
    With `memory` (a dict) on CUDA, `memory["peak_bytes"]` is the most memory the steps
    needed during the timed windows: the caching allocator's peak of allocated bytes (its
    counter is reset after warm-up, read after: no cost inside the windows) plus, under
    `cuda_graphs`, the bytes of the graphs' private pool that no tensor holds. A replay
    writes its temporaries there without asking the allocator, and the pool was filled at
    capture, before the reset, so the allocated peak alone under-reads a graphed step by its
    temporaries (`memory["graph_pool_bytes"]`; `memory["allocated_peak_bytes"]` beside it).
    """
    for _ in range(warmup):
        trainer.step()
    _sync(trainer.device)
    cuda = memory is not None and trainer.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(trainer.device)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            trainer.step()
        _sync(trainer.device)
        samples.append((time.perf_counter() - t0) / n)
    if cuda:
        allocated = torch.cuda.max_memory_allocated(trainer.device)
        pools = graph_pool_bytes(trainer.device)
        memory.update(
            peak_bytes=allocated + pools, allocated_peak_bytes=allocated, graph_pool_bytes=pools
        )
    return samples


def graph_pool_bytes(device: torch.device) -> int:
    """Bytes reserved in private (CUDA graph) pools that no tensor holds: the captured
    graphs' temporaries, which their replays reuse. Segments of the default pool have pool
    id `(0, 0)`; every other pool is a graph's (or a user's `torch.cuda.MemPool`)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    idle = 0
    for seg in torch.cuda.memory_snapshot():
        if seg.get("device") != index or tuple(seg.get("segment_pool_id", (0, 0))) == (0, 0):
            continue
        idle += int(seg["total_size"]) - int(seg["allocated_size"])
    return idle


_ORDER = (
    "cuda_graphs",
    "no_host_syncs",
    "persistent_hooks",
    "explicit_forward",
    "cache_target_weights",
    "fused_adamw",
    "prefetch",
    "data_workers",
    "pin_memory",
    "non_blocking",
    "async_checkpoint",
    "lean_gc",
    "fused_unmasked",
    "fused_ci_fn",
    "bf16",
    "compile",  # last: alone (with per-call hooks and syncs) it compiles for a long time
)


def ablation_configs(device: str) -> list[tuple[str, Flags]]:
    """Baseline, all fast flags, all exact flags, then each flag alone (that the device runs).

    The most informative rows come first, so a time budget cuts the least useful ones.
    """
    cuda = str(device).startswith("cuda")
    configs = [
        ("baseline", Flags()),
        ("all_on", Flags.fastest(device)),
        ("all_exact", Flags.exact()),
    ]
    for name in _ORDER:
        if name in CUDA_ONLY_FLAGS and not cuda:
            continue
        configs.append((name, Flags.parse([name])))
    assert {n for n, _ in configs} >= set(Flags.names()) - set(CUDA_ONLY_FLAGS)
    return configs


def ablate(
    workload: str,
    *,
    device: str = "cpu",
    warmup: int = 5,
    n: int = 20,
    repeats: int = 3,
    seed: int = 0,
    only: list[str] | None = None,
    overrides: dict | None = None,
    budget_s: float | None = None,
    on_row: Callable[[AblationRow], None] | None = None,
) -> list[AblationRow]:
    """Time every configuration of `ablation_configs` on `workload` (eval off).

    A configuration that fails is reported with its error instead of stopping the ablation;
    once `budget_s` seconds have passed, the remaining ones are reported as skipped.
    """
    rows: list[AblationRow] = []
    start = time.perf_counter()
    for name, flags in ablation_configs(device):
        if only and name not in only and name != "baseline":
            continue
        if budget_s is not None and time.perf_counter() - start > budget_s:
            rows.append(AblationRow(workload, name, flags, None, None, "skipped (time budget)"))
            continue
        n_rows = len(rows)
        trainer = None
        try:
            trainer = make_trainer(
                workload, flags=flags, seed=seed, device=device, overrides=overrides
            )
            memory: dict = {}
            samples = time_steps(trainer, warmup=warmup, n=n, repeats=repeats, memory=memory)
            spread = max(samples) - min(samples)
            rows.append(
                AblationRow(
                    workload,
                    name,
                    flags,
                    statistics.median(samples),
                    spread,
                    peak_bytes=memory.get("peak_bytes"),
                )
            )
        except Exception as e:  # keep going: one broken flag must not hide the others
            msg = f"{type(e).__name__}: {e}".splitlines()[0][:200]
            traceback.print_exc()
            rows.append(AblationRow(workload, name, flags, None, None, msg))
        finally:
            if trainer is not None:
                trainer.close()
            del trainer
            if flags.compile:
                # Compiled code is cached per code object across trainers; without a reset the
                # next workloads would count against dynamo's recompile limit and could
                # silently fall back to eager.
                torch._dynamo.reset()
            gc.collect()
            if str(device).startswith("cuda"):
                torch.cuda.empty_cache()
            if on_row is not None and len(rows) > n_rows:
                on_row(rows[-1])
    return rows


def format_table(rows: list[AblationRow]) -> str:
    """Markdown table: workload, config, ms/step, spread, speedup over that workload's baseline."""
    lines = [
        "| workload | config | ms/step | spread ms | speedup | peak MiB |",
        "|---|---|---|---|---|---|",
    ]
    base = {r.workload: r.step_s for r in rows if r.name == "baseline" and r.step_s}
    for r in rows:
        if r.step_s is None:
            lines.append(f"| {r.workload} | {r.name} | error | | {r.error} |")
            continue
        b = base.get(r.workload)
        speedup = f"{b / r.step_s:.2f}x" if b else "?"
        spread = f"{1e3 * r.spread_s:.2f}" if r.spread_s is not None else ""
        peak = f"{r.peak_bytes / 2**20:.1f}" if r.peak_bytes is not None else ""
        lines.append(
            f"| {r.workload} | {r.name} | {1e3 * r.step_s:.2f} | {spread} | {speedup} | {peak} |"
        )
    return "\n".join(lines)
