"""Failures raised by perf assertions.

They subclass `AssertionError`, so pytest reports a broken performance claim as a test
failure (not an error) and shows the message, which always carries the measured numbers.
"""

from __future__ import annotations

from .instruments import PerfUsageError as PerfUsageError


class PerfFailure(AssertionError):
    """A performance claim was measured and is false."""


class PerfInconclusive(PerfFailure):
    """The budget ran out before the interval decided the claim.

    Never a pass: an undecided claim is reported as its own kind of failure, so a noisy
    machine shows up as "inconclusive" rather than as a silent pass or a false regression.
    """


class PerfWarning(UserWarning):
    """A measurement that runs but may not measure what was meant (e.g. a lazy result)."""
