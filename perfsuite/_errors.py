"""perfsuite's one family of errors (and its warning), defined here and nowhere else.

Everything perfsuite raises on purpose is a `PerfError`, so a caller (or `perfsuite`'s own
commands) can catch the family once. Broken performance claims also subclass
`AssertionError`, so pytest reports them as test failures (not errors) with their message,
which always carries the measured numbers; misuse of the API also subclasses `ValueError`.

This module imports nothing: the plugin loads it in every pytest run, `--perf` or not.
"""

from __future__ import annotations


class PerfError(Exception):
    """Base of every error perfsuite raises on purpose."""


class PerfFailure(PerfError, AssertionError):
    """A performance claim was measured and is false."""


class PerfInconclusive(PerfFailure):
    """The budget ran out before the interval decided the claim.

    Never a pass: an undecided claim is reported as its own kind of failure, so a noisy
    machine shows up as "inconclusive" rather than as a silent pass or a false regression.
    """


class PerfUsageError(PerfError, ValueError):
    """A perf test used the API wrongly (bad argument, unready outputs, unknown name)."""


class PerfKeyError(PerfUsageError, KeyError):
    """A name a mapping of perfsuite's does not hold (a counter, a benchmark statistic).

    Also a `KeyError`, as a mapping's missing key must be (`in`, `.get` and callers' own
    `except KeyError` rely on it); shown with its message, not the message's repr.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class SchemaError(PerfError, ValueError):
    """A results or baseline file is unreadable, corrupted, or of another schema version."""


class AbError(PerfError):
    """`perfsuite ab` cannot give a verdict (bad revision, a run that crashed, no data)."""


class AsvExportError(PerfError):
    """A results file cannot be exported to asv (bad input, or asv's layout is missing)."""


class PerfWarning(UserWarning):
    """A measurement that runs but may not measure what was meant (e.g. a lazy result)."""


# Shown as `perfsuite.PerfFailure` in a failing test and in tracebacks, the name users
# import, rather than the private module that defines it.
for _cls in (
    PerfError,
    PerfFailure,
    PerfInconclusive,
    PerfUsageError,
    PerfKeyError,
    SchemaError,
    AbError,
    AsvExportError,
    PerfWarning,
):
    _cls.__module__ = "perfsuite"
del _cls
