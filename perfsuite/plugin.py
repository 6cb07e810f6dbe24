"""pytest plugin entry point (`pytest11`): hooks and fixture wiring, nothing else.

Without `--perf`, tests marked `perf` are skipped (the reason names the flag) and the
plugin imports neither JAX nor PyTorch, so ordinary test runs pay nothing for it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from . import _turns
from ._options import PerfConfig, PerfMarkerOptions, add_options


if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._fixture import Perf
    from ._session import PerfSession

# The measurement engine (NumPy, SciPy) is imported only when --perf is given: a plain test
# run must not pay for it.


perf_config_key = pytest.StashKey[PerfConfig]()
perf_session_key = pytest.StashKey["PerfSession"]()

SKIP_REASON = "perf test: run with --perf to measure it"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "perf(budget=None, rounds=None, instrument=None, statistic=None, profile=None): a "
        "performance test, "
        "run with --perf; budget in seconds per comparison, rounds before the first look, "
        "instrument to force one of auto/host/jax/torch-cuda/cuda-events, statistic of each "
        "round: 'mean' cost per call (default) or 'median' chunk (the typical call); profile: "
        "when to profile both sides of a comparison (failed/all/off, as --perf-profile).",
    )
    cfg = PerfConfig.from_pytest_config(config)
    config.stash[perf_config_key] = cfg
    if cfg.enabled and os.environ.get(_turns.ENV) and config.getoption("numprocesses", None):
        # The pair's turn-taking is between two processes; xdist workers would all share it.
        raise pytest.UsageError(
            "`perfsuite ab` runs each revision in one process: drop `-n/--numprocesses` "
            "(pytest-xdist) from the pytest arguments."
        )
    if cfg.enabled:
        from ._session import PerfSession

        session = PerfSession(config, cfg)
        from . import _baseline

        _baseline.check_early(session)
        config.stash[perf_session_key] = session
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(_XdistHooks(session), "perfsuite-xdist")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cfg = config.stash[perf_config_key]
    if cfg.enabled:
        selected, deselected = [], []
        for item in items:
            (selected if item.get_closest_marker("perf") else deselected).append(item)
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = selected
    else:
        skip = pytest.mark.skip(reason=SKIP_REASON)
        for item in items:
            if item.get_closest_marker("perf"):
                item.add_marker(skip)


@pytest.fixture
def perf(request: pytest.FixtureRequest) -> Iterator[Perf]:
    """Measure and assert performance side by side (see `perfsuite.Perf`)."""
    config = request.config
    cfg = config.stash[perf_config_key]
    node = request.node
    if node.get_closest_marker("perf") is None:
        raise pytest.UsageError(
            f"{node.nodeid} uses the `perf` fixture but is not marked: add @pytest.mark.perf."
        )
    if not cfg.enabled:  # only reachable when a test opts out of the skip
        pytest.skip(SKIP_REASON)
    from ._fixture import Perf

    marker = PerfMarkerOptions.from_pytest_item(node)
    session = config.stash[perf_session_key]
    # Under `perfsuite ab` every timed section first takes this process's turn.
    before_round = _turns.take_turn if os.environ.get(_turns.ENV) else lambda: None
    before_round, first = _with_reference(session, before_round)
    perf = Perf(node.nodeid, cfg.settings(marker), session.device_lock, session.add, before_round)
    perf.profiler = _profiler(config, cfg, marker, node.nodeid)
    yield perf
    session.reference.attach(session.measurements[first:])
    # After the test, while its callables exist: series slower than a baseline (judged as
    # the gate will judge them at the end of the session) are profiled now.
    perf.profiler.after_test(perf.sources, session)


def _with_reference(session: PerfSession, before_round):
    """`before_round` that also samples the machine-speed reference (`perfsuite._reference`),
    after this process's turn; and where this test's measurements will start in the session."""
    session.reference.begin()  # what an earlier test left unclaimed is not this test's

    def hook() -> None:
        before_round()
        session.reference.sample()

    return hook, len(session.measurements)


def _profiler(config: pytest.Config, cfg: PerfConfig, marker: PerfMarkerOptions, nodeid: str):
    """Issue 16: the hook that profiles both sides of a comparison after its verdict."""
    from ._profile import Profiler

    mode = marker.profile or cfg.profile
    if os.environ.get(_turns.ENV):
        # A run of a `perfsuite ab` pair: profiling between its turns would load the CPU
        # its partner is timing on. `perfsuite ab --profile` profiles in runs of its own.
        mode = "off"
    return Profiler(mode, cfg.results_dir, nodeid, config.rootpath)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("perf") is not None:
        # Bad marker keywords are an error of the test even if it never asks for `perf`.
        PerfMarkerOptions.from_pytest_item(item)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    perf_session = config.stash.get(perf_session_key, None)
    if perf_session is None:
        return
    if perf_session.worker_id is not None:
        # xdist worker: hand the measurements to the controller, which writes one document.
        config.workeroutput["perfsuite"] = perf_session.serialisable()  # type: ignore[attr-defined]
        return
    from . import _baseline

    _baseline.note_outcome(perf_session, session, exitstatus)
    perf_session.finish(exitstatus)
    if perf_session.errors and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    perf_session = config.stash.get(perf_session_key, None)
    if perf_session is None or perf_session.worker_id is not None:
        return
    from ._report import terminal_table

    tr = terminalreporter
    tr.section("perf")
    measurements = perf_session.measurements
    if measurements:
        # Fits 120 columns, grouped by test with short names; `-v` shows full series ids.
        tr.write_line(terminal_table(measurements, verbose=config.option.verbose > 0))
    tests = len({m["test"] for m in measurements})
    line = f"perf: {len(measurements)} measured in {tests} tests"
    if not measurements:
        line = "perf: 0 measured (no test marked `perf` measured anything)"
    tr.write_line(line, yellow=not measurements, bold=True)
    if perf_session.results_path is not None:
        tr.write_line(f"perf: results written to {perf_session.results_path}")
    for note in perf_session.notes:
        tr.write_line(f"perf: {note}", yellow=True)
    if perf_session.workers:
        tr.write_line(
            f"perf: {perf_session.workers} xdist workers; timed sections were serialised "
            "with a lock, so no two measurements overlapped on this machine's devices."
        )
    from . import _baseline

    for text, markup in _baseline.summary_lines(perf_session):
        tr.write_line(text, **markup)
    for message in perf_session.errors:
        tr.write_line(f"perf: {message}", red=True, bold=True)


class _XdistHooks:
    """Registered only when pytest-xdist is present (its hooks are unknown otherwise)."""

    def __init__(self, session: PerfSession):
        self.session = session

    def pytest_configure_node(self, node) -> None:
        self.session.workers += 1

    def pytest_testnodedown(self, node, error) -> None:
        self.session.measurements.extend(getattr(node, "workeroutput", {}).get("perfsuite", []))
