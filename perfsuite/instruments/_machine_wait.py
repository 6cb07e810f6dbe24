"""Time the machine kept a thread waiting for a CPU: Linux's per-thread run-queue delay.

On a shared machine a busy neighbour takes the CPU for milliseconds at a time, and a timed
call that was preempted looks exactly like a slow call. The kernel keeps the difference:
`/proc/thread-self/schedstat` counts the nanoseconds the thread was *runnable but not
running* (its second field). Subtracting that from a timed section's wall time removes the
machine's contention and nothing of the workload's own cost: a collection, an allocation, a
recompile run on the thread (CPU time); a sleep, I/O or a device sync is a voluntary wait,
which the kernel does not count here.

That holds only while the thread has no competitor of the workload's own: busy threads of
the same process (XLA's or BLAS's pools, torch's intra-op threads) or child processes
(data-loader workers) make the run-queue delay partly the workload competing with itself,
which is its cost. So a round's correction is kept only if the process has no children and
its other threads used (almost) no CPU during the round (`OtherThreads`); otherwise the
round's wall times stand as measured. Never used where schedstat is missing (not Linux, or
a kernel without it).
"""

from __future__ import annotations

import os
import threading


class MachineWait:
    """Reads this thread's run-queue delay; `available` is False where it cannot."""

    def __init__(self) -> None:
        self._fd: int | None = None
        try:
            fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
            os.pread(fd, 128, 0).split()[1]
            self._fd = fd
        except (OSError, IndexError):
            self._fd = None

    @property
    def available(self) -> bool:
        return self._fd is not None

    def seconds(self) -> float:
        """Total seconds this thread has waited on a run queue so far."""
        assert self._fd is not None
        return int(os.pread(self._fd, 128, 0).split()[1]) * 1e-9


#: Threads above which the others are not read (a JAX or torch process: their pools are
#: what the work runs on, so the correction would not be kept anyway).
MAX_THREADS = 16
#: CPU the other threads may use during a round, as a share of its wall time, for the
#: round's correction to stand (an idle pool still wakes up now and then).
IDLE_SHARE = 0.01


class OtherThreads:
    """CPU seconds used by this process's other threads, and whether it has children."""

    def __init__(self) -> None:
        self._me = threading.get_native_id()

    def cpu_seconds(self) -> float | None:
        """Their CPU time so far, or None where it cannot be told (too many, children, no
        schedstat): then a round's correction is not kept."""
        try:
            tids = os.listdir("/proc/self/task")
            if len(tids) > MAX_THREADS:
                return None
            with open(f"/proc/self/task/{os.getpid()}/children") as fh:
                if fh.read().split():
                    return None
            total = 0
            for tid in tids:
                if int(tid) == self._me:
                    continue
                with open(f"/proc/self/task/{tid}/schedstat") as fh:
                    total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return total * 1e-9
