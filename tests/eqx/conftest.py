"""Run the trainfast.eqx tests on 8 simulated CPU devices (correctness runs only).

`jax_num_cpu_devices` only takes effect before JAX's backend initialises. `pytest_configure`
in a non-initial conftest is called as soon as the conftest is imported (during collection,
before any test runs), with the parsed options.

Under `--perf` the simulated devices are left off: with 8 host "devices" every dispatch on
device 0 costs more (measured here: the cached BERT-12L tiny step 1.85 -> 4.3 ms, filter_jit
13.3 -> 13.9 ms), which is an artefact of the simulation, not of the code being measured.
The sharding tests that need the devices are not perf tests, so `--perf` deselects them.
"""

import jax
import pytest


NUM_DEVICES = 8


def pytest_configure(config):
    if config.getoption("perf", default=False):
        return
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
