"""Run the trainfast.eqx tests on 8 simulated CPU devices.

`jax_num_cpu_devices` only takes effect before JAX's backend initialises, which is why it is
set at import time here (conftests are imported during collection, before any test runs).
"""

import jax
import pytest


NUM_DEVICES = 8

try:
    jax.config.update("jax_num_cpu_devices", NUM_DEVICES)
except RuntimeError:  # backend already initialised by something imported earlier
    pass


@pytest.fixture(scope="session")
def eight_devices():
    devices = jax.devices()
    if len(devices) < NUM_DEVICES:
        pytest.skip(
            f"needs {NUM_DEVICES} devices, found {len(devices)}: JAX's backend was initialised "
            "before tests/eqx/conftest.py could set `jax_num_cpu_devices`."
        )
    return devices[:NUM_DEVICES]
