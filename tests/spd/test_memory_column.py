"""The ablation table's peak-memory column (issue 14): CUDA allocated peak over the timed
windows, blank off CUDA (the H200 numbers come from scripts/h200_memory.py)."""

from __future__ import annotations

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
