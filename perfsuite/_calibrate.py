"""The slowdown `perfsuite calibrate` injects: the engine's side of the calibration.

`PERFSUITE_CALIBRATE_SLOWDOWN=F` in a pytest session's environment makes the engine wrap
every candidate (`perfsuite._engine`) so that each timed call waits for its work and then
busy-waits (F - 1) times the call's own cost (`slowed`). The command that sets it, its
sessions, rates and tables are the subpackage `perfsuite.calibrate`; this module stays a
leaf (nothing from perfsuite imported), because the engine imports it in every session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ._errors import PerfUsageError


#: Environment variable that makes the engine slow every timed call down by this factor.
SLOWDOWN_ENV = "PERFSUITE_CALIBRATE_SLOWDOWN"


def parse_slowdown(text: str | None) -> float | None:
    """The factor in `PERFSUITE_CALIBRATE_SLOWDOWN` (None when unset or empty)."""
    if not text:
        return None
    try:
        factor = float(text)
    except ValueError:
        factor = float("nan")
    if not factor >= 1.0 or factor == float("inf"):
        raise PerfUsageError(
            f"{SLOWDOWN_ENV}={text!r}: the slowdown must be a finite factor >= 1 (e.g. 1.1 "
            "for 10% slower); it is meant for `perfsuite calibrate` only."
        )
    return factor


def slowed(
    fn: Callable[[], Any], wait: Callable[[Any], None], factor: float, *, on_device: bool
) -> Callable[[], Any]:
    """`fn`, waited for, then `factor - 1` times its own cost of busy-waiting.

    A call's cost is its wall time where the work runs on an accelerator (`on_device`), and
    otherwise the smaller of its wall time and the process's CPU time over it: on a loaded
    machine the wall time includes the time the machine kept the process off its CPU, which
    is not the call's work and would be slowed down with it. The busy-wait is measured in
    this thread's CPU time, so it is work the machine may delay as it delays any other.
    """
    wall, cpu, thread = time.perf_counter, time.process_time, time.thread_time

    def call() -> Any:
        w0, c0 = wall(), cpu()
        out = fn()
        wait(out)
        w, c = wall() - w0, cpu() - c0
        until = thread() + (factor - 1.0) * (w if on_device else min(w, c))
        while thread() < until:
            pass
        return out

    return call
