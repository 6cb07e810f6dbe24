"""Compile accounting for JAX through `jax.monitoring`.

JAX reports the duration of every trace, lowering and backend compilation as monitoring
events. One process-wide listener (registered lazily, the first time a JAX measurement runs)
adds them to whichever `CompileLog` is active, so a measurement can say how much of its
first call was compilation and whether anything compiled again after warm-up (a retrace:
a changed shape, dtype or static argument, which silently costs seconds per step).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from dataclasses import dataclass, field


TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
LOWER_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"

_lock = threading.Lock()
_active: list[CompileLog] = []
_registered = False


@dataclass
class CompileLog:
    """Counts and seconds of JAX traces, lowerings and compilations seen while active."""

    traces: int = 0
    compilations: int = 0
    trace_s: float = 0.0
    lower_s: float = 0.0
    compile_s: float = 0.0
    events: list[tuple[str, float]] = field(default_factory=list)

    def add(self, event: str, seconds: float) -> None:
        if event == TRACE_EVENT:
            self.traces += 1
            self.trace_s += seconds
        elif event == LOWER_EVENT:
            self.lower_s += seconds
        elif event == COMPILE_EVENT:
            self.compilations += 1
            self.compile_s += seconds
        else:
            return
        self.events.append((event.rsplit("/", 1)[-1], seconds))

    def merge(self, other: CompileLog) -> None:
        """Add `other`'s counts and seconds to this log."""
        self.traces += other.traces
        self.compilations += other.compilations
        self.trace_s += other.trace_s
        self.lower_s += other.lower_s
        self.compile_s += other.compile_s
        self.events.extend(other.events)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "traces": self.traces,
            "compilations": self.compilations,
            "trace_s": self.trace_s,
            "lower_s": self.lower_s,
            "compile_s": self.compile_s,
        }


def _listener(event: str, duration_secs: float, **_: object) -> None:
    with _lock:
        for log in _active:
            log.add(event, duration_secs)


def _ensure_listener() -> bool:
    global _registered
    if "jax" not in sys.modules:
        return False
    if not _registered:
        import jax

        jax.monitoring.register_event_duration_secs_listener(_listener)
        _registered = True
    return True


@contextlib.contextmanager
def compile_log():
    """Collect JAX compile events for the duration of the block (empty if JAX is not loaded)."""
    log = CompileLog()
    _ensure_listener()
    with _lock:
        _active.append(log)
    try:
        yield log
    finally:
        with _lock:
            _active.remove(log)
