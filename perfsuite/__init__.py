"""perfsuite: performance as a tested property of JAX/Equinox and PyTorch code.

The pytest plugin (`perfsuite.plugin`, registered through the `pytest11` entry point) adds
`--perf` and the `perf` fixture; the names below are what tests and tools import.

They are loaded on first use (PEP 562): pytest imports this package for every test run
through the entry point, and a run without `--perf` must not pay for NumPy and SciPy.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from ._comparison import Comparison as Comparison
    from ._comparison import Ratio as Ratio
    from ._comparison import compare as compare
    from ._errors import AbError as AbError
    from ._errors import AsvExportError as AsvExportError
    from ._errors import PerfError as PerfError
    from ._errors import PerfFailure as PerfFailure
    from ._errors import PerfInconclusive as PerfInconclusive
    from ._errors import PerfKeyError as PerfKeyError
    from ._errors import PerfUsageError as PerfUsageError
    from ._errors import PerfWarning as PerfWarning
    from ._errors import SchemaError as SchemaError
    from ._fixture import Measurement as Measurement
    from ._fixture import Perf as Perf
    from ._memory import MemoryStats as MemoryStats
    from ._scaling import ScalingFit as ScalingFit
    from ._settings import Settings as Settings
    from ._steps import StepStats as StepStats

#: Public name -> module that defines it (a test checks this against the imports above).
_EXPORTS = {
    "Comparison": "._comparison",
    "Ratio": "._comparison",
    "compare": "._comparison",
    "AbError": "._errors",
    "AsvExportError": "._errors",
    "PerfError": "._errors",
    "PerfFailure": "._errors",
    "PerfInconclusive": "._errors",
    "PerfKeyError": "._errors",
    "PerfUsageError": "._errors",
    "PerfWarning": "._errors",
    "SchemaError": "._errors",
    "Measurement": "._fixture",
    "Perf": "._fixture",
    "MemoryStats": "._memory",
    "ScalingFit": "._scaling",
    "Settings": "._settings",
    "StepStats": "._steps",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'perfsuite' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


try:
    __version__ = _version("perfsuite")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
