"""The words and numbers perfsuite accepts, defined once, without pytest.

Sets of words are `StrEnum`s (members compare equal to their strings, so documents and
keyword arguments stay plain text); parsers turn command-line text into checked values and
raise `argparse.ArgumentTypeError` with the rule, which both pytest's option parser and the
`perfsuite` command print as "Could not parse value". The plugin, the fixture, the CLI and
the readers of results all use these, so the lists cannot drift apart.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Statistic(StrEnum):
    """A round's sample (`statistic=`): the mean cost per call, or the median chunk."""

    MEAN = "mean"
    MEDIAN = "median"


class RunStatistic(StrEnum):
    """The number one session (or one `perfsuite ab` run) is reduced to (`--perf-fail STAT:`)."""

    MIN = "min"
    MEDIAN = "median"
    MEAN = "mean"


class Law(StrEnum):
    """Scaling laws `perf.assert_scaling(law=...)` knows."""

    CONSTANT = "constant"
    LINEAR = "linear"
    NLOGN = "nlogn"
    QUADRATIC = "quadratic"


class ScalingMetric(StrEnum):
    """What `perf.assert_scaling(metric=...)` times at each size.

    `steady`: warm calls, calibrated into rounds (the default). `first_call`: the first call
    of a callable built afresh for every sample (trace + compile + run, waited for).
    `compile`: of that same first call, only the seconds of XLA's backend compilations
    (`jax.monitoring`), for claims about the compiler's work alone (JAX only).
    """

    STEADY = "steady"
    FIRST_CALL = "first_call"
    COMPILE = "compile"


class PairedTest(StrEnum):
    """Paired tests of `perfsuite ab --test`."""

    SIGNED_RANK = "signed-rank"
    SIGN = "sign"


class Verdict(StrEnum):
    """The verdict of an assertion or a scaling check, as written to results."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class InstrumentName(StrEnum):
    """Names accepted by the `instrument=` marker keyword and fixture arguments."""

    AUTO = "auto"
    HOST = "host"
    JAX = "jax"
    TORCH_CUDA = "torch-cuda"
    CUDA_EVENTS = "cuda-events"


class MarkerKey(StrEnum):
    """Keywords of `@pytest.mark.perf(...)`."""

    BUDGET = "budget"
    ROUNDS = "rounds"
    INSTRUMENT = "instrument"
    STATISTIC = "statistic"
    PROFILE = "profile"


class ProfileMode(StrEnum):
    """When profiles of both sides are taken (`--perf-profile`, marker `profile=`)."""

    FAILED = "failed"
    ALL = "all"
    OFF = "off"


def words(enum: type[StrEnum]) -> list[str]:
    """The values of `enum`, in order (for messages: "must be one of [...]")."""
    return [member.value for member in enum]


def parse_seconds(text: str) -> float:
    """A positive, finite number of seconds, e.g. `20` or `2.5`."""
    try:
        value = float(text.strip().removesuffix("s"))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"Could not parse value: {text!r}. Expected a positive number of seconds, e.g. '20'."
        )
    return value


def parse_progress_after(text: str) -> float | None:
    """`--perf-progress`: seconds (> 0) before an undecided comparison says so, or `off`."""
    if text.strip().lower() == "off":
        return None
    try:
        return parse_seconds(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"Could not parse value: {text!r}. Expected a positive number of seconds, e.g. "
            "'5', or 'off'."
        ) from None


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def parse_name(text: str) -> str:
    """A baseline name: letters, digits, `_`, `.`, `-` (it becomes part of a file name)."""
    if not _NAME.match(text):
        raise argparse.ArgumentTypeError(
            f"Could not parse value: {text!r}. Expected a baseline name of letters, digits, "
            "'_', '.', '-', e.g. 'main'."
        )
    return text


_FAIL = re.compile(
    r"^(?:(?P<stat>" + "|".join(words(RunStatistic)) + r"):)?(?P<pct>\d+(?:\.\d+)?)%$"
)


@dataclass(frozen=True)
class FailExpr:
    """`--perf-fail`: fail when a series is slower than the baseline by more than `fraction`,
    judged on `stat` (min, median, mean) of each session's rounds, with confidence (the lower
    bound of the interval over the baseline's sessions, not a point)."""

    stat: str
    fraction: float

    def __str__(self) -> str:
        return f"{self.stat}:{self.fraction * 100:g}%"


def parse_fail(text: str) -> FailExpr:
    m = _FAIL.match(text.strip())
    if not m or float(m["pct"]) <= 0:
        raise argparse.ArgumentTypeError(
            f"Could not parse value: {text!r}. Expected a slowdown percentage, optionally with "
            "a statistic, e.g. '5%' or 'median:5%'."
        )
    return FailExpr(m["stat"] or "median", float(m["pct"]) / 100)


def parse_path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"Could not parse value: {text!r}. Expected a file path, e.g. 'results.json'."
        )
    return Path(text)


def parse_positive_int(text: str) -> int:
    """A positive integer, e.g. `20`."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"Could not parse value: {text!r}. Expected a positive integer, e.g. '20'."
        )
    return value


def parse_level(text: str) -> float:
    """A two-sided confidence level in [0.5, 1), e.g. `0.99`."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.5 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"Could not parse value: {text!r}. Expected a confidence level in [0.5, 1), e.g. '0.99'."
        )
    return value


def parse_profile(text: str) -> str:
    """`--perf-profile`: one of `ProfileMode` (failed, all, off)."""
    if text not in words(ProfileMode):
        raise argparse.ArgumentTypeError(
            f"Could not parse value: {text!r}. Expected one of {words(ProfileMode)}, e.g. 'failed'."
        )
    return text


# --------------------------------------------------------------------------- memory


class MemorySource(StrEnum):
    """How a `MemoryStats` was measured (`perfsuite._memory`)."""

    TORCH_CUDA = "torch-cuda"
    JAX_DEVICE = "jax-device"
    XLA_MEMORY_ANALYSIS = "xla-memory-analysis"
    HOST_RSS = "host-rss"


#: Byte units of a size: binary (KiB, MiB, GiB, TiB) and decimal (KB, MB, GB, TB), case as
#: written by people ("512MB", "2 GiB", "1gib"); "B" alone is bytes.
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
}
_SIZE = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[A-Za-z]*)\s*$")
_SIZE_EXAMPLE = "e.g. 2147483648, '2 GiB' or '512MB'"


def parse_size(text: str) -> int:
    """A number of bytes: an integer, or a number with a unit (`"2 GiB"`, `"512MB"`)."""
    m = _SIZE.match(text) if isinstance(text, str) else None
    unit = _SIZE_UNITS.get(m["unit"].lower()) if m else None
    value = float(m["num"]) * unit if m and unit is not None else math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"Could not parse value: {text!r}. Expected a size in bytes with an optional unit "
            f"(B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), {_SIZE_EXAMPLE}."
        )
    return int(round(value))


def parse_size_arg(value: object, arg: str) -> int:
    """`value` (an `int` of bytes or a size string) as bytes; bad input is a `ValueError`
    naming `arg` with a good example."""
    from ._errors import PerfUsageError

    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PerfUsageError(
            f"`{arg}` must be a number of bytes or a size string, {_SIZE_EXAMPLE}; got {value!r}."
        )
    if isinstance(value, (int, float)):
        if not (math.isfinite(value) and value >= 0):
            raise PerfUsageError(f"`{arg}` must be >= 0 bytes, {_SIZE_EXAMPLE}; got {value!r}.")
        return int(value)
    try:
        return parse_size(value)
    except argparse.ArgumentTypeError:
        raise PerfUsageError(
            f"`{arg}`={value!r} is not a size: a number of bytes with an optional unit "
            f"(B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), {_SIZE_EXAMPLE}."
        ) from None


def parse_percent(text: str) -> float:
    """A growth percentage >= 0 (`--perf-fail-memory`), e.g. `0`, `5%` -> a fraction."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"Could not parse value: {text!r}. Expected a percentage >= 0, e.g. '0' or '5%'."
        )
    return value / 100


def fmt_bytes(n: float) -> str:
    """`1.5 GiB`, `256 MiB`, `-4 KiB`, `12 B`: binary units, 3 significant digits."""
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{sign}{n / scale:.3g} {unit}"
    return f"{sign}{int(n)} B"


# --- `perfsuite calibrate` (perfsuite.calibrate): counts and lists of scenario words ---


def parse_count(text: str) -> int:
    """A whole number >= 0, e.g. `0` or `100` (a count that may be none)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"Could not parse value: {text!r}. Expected a whole number >= 0, e.g. '100'."
        )
    return value


def word_list(allowed: list[str]) -> Callable[[str], list[str]]:
    """An argparse type: comma-separated words, each one of `allowed`, none twice, e.g. `aa,6x`."""

    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        if not items or any(x not in allowed for x in items) or len(set(items)) < len(items):
            raise argparse.ArgumentTypeError(
                f"Could not parse value: {text!r}. Expected comma-separated names from "
                f"{allowed}, each once, e.g. {','.join(allowed[:2])!r}."
            )
        return items

    return parse
