"""Taking turns with a partner process: how `perfsuite ab` interleaves BASE and HEAD in time.

Two revisions measured in separate processes one after the other see different machines: on
a shared VM the speed of identical code drifts by several percent over seconds (measured on
the 2-core CI machine: per-run medians of one loop spread 2-4%, pinned or not, with or
without ASLR, so it is the machine, not the memory layout). `perfsuite ab` therefore starts
BASE and HEAD *together* and lets them run strictly in turn, one timed round each: the two
sides of every pair then sample the same moments of the machine, as candidates inside one
`perf.compare` do.

The protocol, over two FIFOs (one inbox per process) named in `PERFSUITE_AB_TURNS`
(`inbox:outbox:first[:cpu]`):

- A process runs only while it holds the token. `take()` (called before every timed round)
  hands the token to the partner and blocks until it comes back, so each timed round runs
  while the partner sits blocked in `take()`: nothing else of the pair competes for the CPU.
- The partner with `first=1` starts by handing over (it never measures first), the other
  starts by waiting; so the first round only starts once *both* have finished starting up.
- With `cpu`, both processes pin all their threads to that CPU at their first turn (after
  start-up, which runs on every CPU): CPUs of a shared VM differ in speed from moment to
  moment, and two processes taking turns would otherwise each keep to their own CPU.
- The `perfsuite ab` parent writes `X` into a process's inbox when its partner has exited
  (normally or not); from then on `take()` returns at once and the survivor runs alone.
- A process whose parent is gone (killed before it could say so: `PERFSUITE_AB_PARENT` is
  no longer its parent) would wait for a turn forever: `take()` waits at most
  `POLL_S` at a time, checks the parent, and ends the session with a clear message.

Outside `perfsuite ab` the variable is unset and no end is made. Both ends live here: the
parent's (`PairTurns`, which `perfsuite.ab._runs.run_pair` holds for a pair) and the run's
(`Turns`, made by `PytestTurns`, which the plugin hands to the engine as its `before_round`
hook).
"""

from __future__ import annotations

import contextlib
import os
import select
from pathlib import Path
from typing import Any

from .._errors import PerfUsageError


ENV = "PERFSUITE_AB_TURNS"
#: The pid of the `perfsuite ab` process that started this one.
PARENT_ENV = "PERFSUITE_AB_PARENT"
TOKEN, PARTNER_GONE = b"T", b"X"
#: Seconds between checks that the parent is still there while waiting for a turn.
POLL_S = 0.5


class TurnsError(RuntimeError):
    """The turn-taking cannot go on (the `perfsuite ab` parent is gone)."""


def parse_env() -> tuple[str, str, bool, int | None, int | None] | None:
    """`(inbox, outbox, first, cpu, parent)` from `ENV` and `PARENT_ENV`, None when unset; a
    malformed value is a `PerfUsageError` naming the variable and its format."""
    spec = os.environ.get(ENV)
    if not spec:
        return None
    parts = spec.split(":")
    parent = os.environ.get(PARENT_ENV, "")
    if len(parts) not in (3, 4) or not all(p.isdigit() for p in parts[2:]):
        raise PerfUsageError(
            f"{ENV}={spec!r}: expected 'INBOX:OUTBOX:FIRST[:CPU]' (set by `perfsuite ab`)."
        )
    if parent and not parent.isdigit():
        raise PerfUsageError(
            f"{PARENT_ENV}={parent!r}: expected a process id (set by `perfsuite ab`)."
        )
    cpu = int(parts[3]) if len(parts) == 4 else None
    return parts[0], parts[1], parts[2] == "1", cpu, int(parent) if parent else None


class Turns:
    """One side of the turn-taking protocol (see the module docstring)."""

    def __init__(
        self, inbox: str, outbox: str, first: bool, cpu: int | None = None,
        parent: int | None = None,
    ):  # fmt: skip
        # O_RDWR on a FIFO never blocks at open and keeps it open for both ends, so neither
        # side has to wait for the other to have opened its end.
        self._in = os.open(inbox, os.O_RDWR)
        self._out = os.open(outbox, os.O_RDWR)
        self._hand_over = first
        self.alone = False
        self._parent = os.getppid() if parent is None else parent
        if cpu is not None:
            pin_process(cpu)

    @classmethod
    def from_env(cls) -> Turns | None:
        spec = parse_env()
        return None if spec is None else cls(*spec)

    def take(self) -> None:
        """Give the partner its turn, then wait for ours (returns at once when alone)."""
        if self.alone:
            return
        if self._hand_over:
            os.write(self._out, TOKEN)
        self._hand_over = True
        if self._read() == PARTNER_GONE:
            self.alone = True

    def _check_parent(self) -> None:
        if os.getppid() != self._parent:
            raise TurnsError(
                f"`perfsuite ab` (pid {self._parent}), which runs this process and its "
                "partner in turns, is gone: stopping instead of waiting for a turn forever."
            )

    def _read(self) -> bytes:
        # Checked at every turn as well as while waiting: two runs whose parent is gone would
        # otherwise go on handing the turn to each other, each token arriving before a
        # wait could time out, until their budgets ran out.
        self._check_parent()
        while not select.select([self._in], [], [], POLL_S)[0]:
            self._check_parent()
        return os.read(self._in, 1)


class PairTurns:
    """The parent's end for one pair: both inboxes, made and held open for the whole pair.

    `env(side)` is what that side's run needs in its environment; `exited(side)` tells the
    partner of a run that has exited to go on alone. Held open here because a FIFO with no
    open end drops its data, and a run may exit before its partner has opened the inbox the
    parent writes to.
    """

    def __init__(self, folder: Path, tag: str, order: tuple[str, str], cpu: int | None):
        self.order, self.cpu = order, cpu
        self._paths = {side: folder / f"turns-{side.lower()}-{tag}" for side in order}
        self._fds: dict[str, int] = {}

    def __enter__(self) -> PairTurns:
        try:
            for side, path in self._paths.items():
                os.mkfifo(path)
                self._fds[side] = os.open(path, os.O_RDWR)
        except BaseException:
            self.__exit__()
            raise
        return self

    def env(self, side: str) -> dict[str, str]:
        """`ENV` and `PARENT_ENV` of `side`'s run. The second in `order` hands the token over
        first (`first=1`), so the first in `order` measures first."""
        k = self.order.index(side)
        other = self.order[1 - k]
        spec = f"{self._paths[side]}:{self._paths[other]}:{k}"
        if self.cpu is not None:
            spec += f":{self.cpu}"
        return {ENV: spec, PARENT_ENV: str(os.getpid())}

    def exited(self, side: str) -> None:
        """`side`'s run has exited: its partner, maybe waiting for a turn, goes on alone."""
        other = self.order[1 - self.order.index(side)]
        os.write(self._fds[other], PARTNER_GONE)

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        for path in self._paths.values():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def pin_process(cpu: int) -> None:
    """Pin every thread of this process (XLA's and torch's pools included) to `cpu`."""
    if not hasattr(os, "sched_setaffinity"):
        return
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except OSError:
            pass  # a thread that ended meanwhile


# --------------------------------------------------------------------------- the pytest end


class PytestTurns:
    """The protocol's end inside a run's pytest session, made by the plugin at configure time
    (`for_session`) and handed to the engine as its `before_round` hook.

    The FIFOs are opened, and the process pinned, at the first timed round rather than at
    configure time: start-up (imports, collection, compilation) runs on every CPU, and only
    the timed rounds need the partner to wait. A `TurnsError` (the parent is gone) ends the
    whole session, not just the test: every later turn would fail alike.
    """

    def __init__(self, spec: tuple[str, str, bool, int | None, int | None]):
        self._spec = spec
        self._turns: Turns | None = None

    @classmethod
    def for_session(cls, config: Any, *, perf_enabled: bool) -> PytestTurns | None:
        """The end for this session when it is a run of a pair and measures (`--perf`), else
        None. Checked here, before any test: the variable's format, and no xdist (`-n`),
        whose workers cannot share one pair's turns."""
        if not perf_enabled:
            return None
        import pytest

        try:
            spec = parse_env()
        except PerfUsageError as exc:
            raise pytest.UsageError(str(exc)) from None
        if spec is None:
            return None
        if config.getoption("numprocesses", None):
            raise pytest.UsageError(
                "`perfsuite ab` runs each revision in one process: drop `-n/--numprocesses` "
                "(pytest-xdist) from the pytest arguments."
            )
        return cls(spec)

    def before_round(self) -> None:
        """Take this process's turn (called before every timed section)."""
        if self._turns is None:
            self._turns = Turns(*self._spec)
        try:
            self._turns.take()
        except TurnsError as exc:
            self._exit(str(exc))

    @staticmethod
    def _exit(message: str) -> None:
        import pytest

        pytest.exit(message, returncode=pytest.ExitCode.INTERRUPTED)
