"""What every `perfsuite` subcommand shares: one-line errors, output, signals, `--` args.

Errors are one line on stderr (`perfsuite: error: ...`, exit 2); output to a reader that
stopped reading (`| head`) is not an error; SIGTERM/SIGHUP unwind like Ctrl-C, so that the
runs and worktrees of `perfsuite ab`/`bisect` are cleaned up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from ._values import FailExpr, parse_fail


def _fail(text: str) -> tuple[FailExpr, bool]:
    """`--fail EXPR`, and whether EXPR named the per-run statistic (`median:5%`)."""
    return parse_fail(text), ":" in text


def _split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def _error(message: str) -> int:
    print(f"perfsuite: error: {message}", file=sys.stderr)
    return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured)
        pass


def _print(text: str) -> None:
    """Print to stdout; a reader that stopped reading (`| head`) is not an error.

    The rest of the command (writing `--json`, the exit code) goes on as if it had read all.
    """
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that the same `finally` blocks clean up."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into `_Terminated` while `perfsuite ab` runs.

    By default these signals end the process at once: the running pytest processes would be
    orphaned (blocked on their turns) and both git worktrees left registered. Raised as an
    exception instead, they unwind through the code that kills the runs and removes the
    worktrees, exactly as Ctrl-C does. A second one during that clean-up is ignored.
    """
    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])

    def handler(signum: int, frame: Any) -> None:
        for sig in wanted:
            signal.signal(sig, signal.SIG_IGN)
        raise _Terminated(signal.Signals(signum).name)

    try:
        previous = {sig: signal.signal(sig, handler) for sig in wanted}
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
