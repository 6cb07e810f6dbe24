"""Instruments: how a timed call is made to *end* on each backend.

A timer that does not wait for asynchronous work measures dispatch, not work. Each
instrument knows how to wait for one kind of output; `select_instrument` picks one from
what the callable returned and which frameworks are loaded, and a test can force one
(`@pytest.mark.perf(instrument="jax")` or `perf.measure(..., instrument="host")`).
"""

from __future__ import annotations

import sys
from typing import Any

from .._values import InstrumentName as InstrumentName
from ._base import Instrument as Instrument
from ._base import PerfUsageError as PerfUsageError
from ._host import HostInstrument as HostInstrument
from ._jax import JaxInstrument as JaxInstrument
from ._torch import CudaEventInstrument as CudaEventInstrument
from ._torch import TorchCudaInstrument as TorchCudaInstrument


_BY_NAME: dict[str, type[Instrument]] = {
    InstrumentName.HOST.value: HostInstrument,
    InstrumentName.JAX.value: JaxInstrument,
    InstrumentName.TORCH_CUDA.value: TorchCudaInstrument,
    InstrumentName.CUDA_EVENTS.value: CudaEventInstrument,
}


def instrument_names() -> list[str]:
    return [name.value for name in InstrumentName]


def select_instrument(output: Any, forced: str | None = None) -> Instrument:
    """The instrument for a callable whose first output was `output`.

    Auto-selection looks only at frameworks already imported: the plugin never imports
    JAX or PyTorch itself, so tests that use neither pay nothing for them.
    """
    if forced not in (None, InstrumentName.AUTO.value):
        if forced not in _BY_NAME:
            raise PerfUsageError(
                f"`instrument` must be one of {instrument_names()}, got {forced!r}."
            )
        return _BY_NAME[forced]()
    if "jax" in sys.modules and JaxInstrument.holds(output):
        return JaxInstrument()
    if "torch" in sys.modules and TorchCudaInstrument.holds(output):
        return TorchCudaInstrument()
    return HostInstrument()
