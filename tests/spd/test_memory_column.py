"""The ablation table's peak-memory column (issue 14): CUDA allocated peak over the timed
windows plus the CUDA graphs' private pool, blank off CUDA (the H200 numbers come from
scripts/h200_memory.py)."""

from __future__ import annotations

import pytest
import torch
from spd_workloads import tiny_resid

from trainfast.spd._bench import AblationRow, format_table
from trainfast.spd._flags import Flags


def test_the_table_has_a_peak_column_blank_without_cuda():
    rows = [
        AblationRow("w", "baseline", Flags(), 0.010, 0.001, peak_bytes=3 * 2**20),
        AblationRow("w", "bf16", Flags.parse(["bf16"]), 0.005, 0.001),
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].endswith("| speedup | peak MiB |")
    assert lines[2] == "| w | baseline | 10.00 | 1.00 | 1.00x | 3.0 |"
    assert lines[3] == "| w | bf16 | 5.00 | 1.00 | 2.00x |  |"


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
def test_a_graphed_step_is_charged_for_its_pool():
    # Under cuda_graphs the graphs' temporaries live in a private pool filled at capture
    # (during warm-up, before the peak counter is reset) and reused by every replay without
    # an allocation: the allocated peak alone under-reads the step by them.
    from trainfast.spd._bench import time_steps
    from trainfast.spd._loop import make_trainer

    peaks = {}
    for name, flags in (("eager", Flags()), ("graphs", Flags.parse(["cuda_graphs"]))):
        trainer = make_trainer(tiny_resid(), flags=flags, device="cuda")
        memory: dict = {}
        try:
            time_steps(trainer, warmup=4, n=3, repeats=1, memory=memory)
        finally:
            trainer.close()
        assert memory["peak_bytes"] == memory["allocated_peak_bytes"] + memory["graph_pool_bytes"]
        peaks[name] = memory
    assert peaks["eager"]["graph_pool_bytes"] == 0
    assert peaks["graphs"]["graph_pool_bytes"] > 0
    # Same step, same temporaries: the graphed step's footprint is not below the eager
    # one's by more than allocator rounding (the pool rounds segments up, 2 MiB each).
    assert peaks["graphs"]["peak_bytes"] >= 0.9 * peaks["eager"]["peak_bytes"]
