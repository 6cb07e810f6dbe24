"""The `python_calls` counter: Python function starts in the calling thread, by code object.

`sys.monitoring` PY_START events where available (Python >= 3.12: cheaper, and no clash with
a profiler), `sys.setprofile` "call" events on 3.11. Either refuses to run under another
profiler rather than report a wrong number.
"""

from __future__ import annotations

import collections
import functools as ft
import sys
from typing import Any

from ._errors import PerfUsageError


def _code_name(code: Any) -> str:
    module = code.co_filename.rsplit("/", 1)[-1]
    return f"{module}:{code.co_firstlineno}:{getattr(code, 'co_qualname', code.co_name)}"


class _CallCounter:
    """Counts Python function starts in this thread, by code object.

    `start()` turns it on as its last act and `stop` is a builtin (a `functools.partial` of
    `sys.setprofile`), so that only the calls in between are counted, none of the counter's
    own: `lambda: f(x)` with `f` a jitted function reads 1 (the lambda; the fast path is C++).
    """

    def __init__(self) -> None:
        self.counter: collections.Counter = collections.Counter()
        counter = self.counter
        monitoring = getattr(sys, "monitoring", None)
        self._monitoring = monitoring
        if monitoring is not None:  # Python >= 3.12: cheaper, and no clash with a profiler
            tool = monitoring.PROFILER_ID
            if monitoring.get_tool(tool) is not None:
                raise PerfUsageError(
                    "`python_calls` cannot be counted while another profiler holds "
                    f"sys.monitoring's profiler slot ({monitoring.get_tool(tool)!r})."
                )

            def start(code: Any, offset: int) -> None:
                counter[code] += 1

            self._tool = tool
            self._callback = start
            self.stop = ft.partial(monitoring.set_events, tool, 0)
            return
        previous = sys.getprofile()
        if previous is not None:
            # A profiler (coverage, cProfile) is on: counting would replace it and its own
            # hooks would be counted. Refuse rather than report a wrong number.
            raise PerfUsageError(
                "`python_calls` cannot be counted while another profiler is active "
                f"(sys.getprofile() is {previous!r}): run the perf tests without it."
            )

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                counter[frame.f_code] += 1

        self._profile = profile
        self.stop = ft.partial(sys.setprofile, None)

    def start(self) -> None:
        monitoring = self._monitoring
        if monitoring is not None:
            monitoring.use_tool_id(self._tool, "perfsuite")
            monitoring.register_callback(self._tool, monitoring.events.PY_START, self._callback)
            monitoring.set_events(self._tool, monitoring.events.PY_START)
        else:
            sys.setprofile(self._profile)

    def close(self) -> None:
        """Undo `start` (after `stop`): frees the monitoring tool id."""
        self.stop()
        monitoring = self._monitoring
        if monitoring is not None and monitoring.get_tool(self._tool) == "perfsuite":
            monitoring.register_callback(self._tool, monitoring.events.PY_START, None)
            monitoring.free_tool_id(self._tool)
