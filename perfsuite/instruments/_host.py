"""The host clock: correct for synchronous code (Python, NumPy, CPU PyTorch)."""

from __future__ import annotations

import sys
from typing import Any

from ._base import Instrument, PerfUsageError, iter_leaves


class HostInstrument(Instrument):
    name = "host"

    def wait(self, output: Any) -> None:
        # Nothing to wait for on the host. But a forced host clock over JAX work that is
        # still in flight would time dispatch only (microseconds for milliseconds of work):
        # refuse that instead of reporting a number far below the work's cost.
        if "jax" in sys.modules:
            for leaf in iter_leaves(output):
                is_ready = getattr(leaf, "is_ready", None)
                if callable(is_ready) and not is_ready():
                    raise PerfUsageError(
                        "The host clock stopped while JAX outputs were still being computed: "
                        "the timing would be the dispatch cost, not the work's. Use "
                        "`instrument='jax'` (or leave `instrument` on 'auto')."
                    )
