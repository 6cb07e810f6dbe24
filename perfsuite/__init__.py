"""perfsuite: performance as a tested property of JAX/Equinox and PyTorch code.

The pytest plugin (`perfsuite.plugin`, registered through the `pytest11` entry point) adds
`--perf` and the `perf` fixture; the names below are what tests and tools import.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from ._comparison import Comparison as Comparison
from ._comparison import Ratio as Ratio
from ._errors import (
    PerfFailure as PerfFailure,
)
from ._errors import (
    PerfInconclusive as PerfInconclusive,
)
from ._errors import (
    PerfUsageError as PerfUsageError,
)
from ._fixture import Measurement as Measurement
from ._fixture import Perf as Perf
from ._scaling import ScalingFit as ScalingFit
from ._settings import Settings as Settings
from ._steps import StepStats as StepStats


try:
    __version__ = _version("perfsuite")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
