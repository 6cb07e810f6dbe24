"""asv benchmarks for trainfast, over the same workload builders as the perf tests.

`asv run --python=same --quick --show-stderr` runs them against the installed project;
`asv check --python=same` only imports and validates them.
"""
