"""pytest plugin entry point (`pytest11`): hooks and fixture wiring, nothing else.

Without `--perf`, tests marked `perf` are skipped (the reason names the flag) and the
plugin imports neither JAX nor PyTorch, so ordinary test runs pay nothing for it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pytest

from ._options import PerfConfig, PerfMarkerOptions, add_options


if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ._fixture import Perf
    from ._session import PerfSession
    from .ab._turns import PytestTurns  # noqa: F401  (the type of `perf_turns_key`)

# The measurement engine (NumPy, SciPy) is imported only when --perf is given: a plain test
# run must not pay for it.


perf_config_key = pytest.StashKey[PerfConfig]()
perf_session_key = pytest.StashKey["PerfSession"]()
#: This run's end of `perfsuite ab`'s turn-taking (None outside a pair), handed to the engine.
perf_turns_key = pytest.StashKey["PytestTurns | None"]()
perf_progress_key = pytest.StashKey["ProgressLines"]()
benchmark_plugin_key = pytest.StashKey["BenchmarkPlugin"]()

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
    from .ab._turns import PytestTurns  # light: `perfsuite.ab` imports its parts lazily

    config.stash[perf_turns_key] = PytestTurns.for_session(config, perf_enabled=cfg.enabled)
    if cfg.enabled:
        from ._session import PerfSession

        session = PerfSession(config, cfg)
        from . import _baseline

        _baseline.check_early(session)
        config.stash[perf_session_key] = session
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(_XdistHooks(session), "perfsuite-xdist")
        from ._progress import ProgressLines

        progress = ProgressLines.from_config(config)
        if progress is not None:
            config.stash[perf_progress_key] = progress
    _configure_benchmark(config, cfg)


def _configure_benchmark(config: pytest.Config, cfg: PerfConfig) -> None:
    """Issue 13: perfsuite's `benchmark` fixture, where it is wanted (`_benchmark_compat`)."""
    from . import _benchmark_compat

    if _benchmark_compat.wanted(config):
        session = config.stash.get(perf_session_key, None)
        plugin = _benchmark_compat.BenchmarkPlugin(
            config, _perf_for if cfg.enabled else None, session
        )
        config.stash[benchmark_plugin_key] = plugin
        config.pluginmanager.register(plugin, "perfsuite-benchmark")


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args):
    """Issue 13: take pytest-benchmark's place with --perf-benchmark-fixture, and accept its
    options while its plugin is not active (after the conftests, which may load it)."""
    from . import _benchmark_compat

    _benchmark_compat.before_conftests(early_config)
    result = yield
    _benchmark_compat.after_conftests(early_config, parser)
    return result


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cfg = config.stash[perf_config_key]
    if cfg.enabled:
        selected, deselected = [], []
        bench = config.stash.get(benchmark_plugin_key, None)
        for item in items:
            # Tests of perfsuite's `benchmark` fixture are perf tests too (issue 13).
            wanted = item.get_closest_marker("perf") or (bench is not None and bench.measures(item))
            (selected if wanted else deselected).append(item)
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = selected
            if bench is None:
                from ._benchmark_compat import deselected_note

                note = deselected_note(deselected)
                if note:
                    config.stash[perf_session_key].notes.append(note)
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
    with _perf_for(request) as perf:
        yield perf


@contextlib.contextmanager
def _perf_for(request: pytest.FixtureRequest, **overrides: Any) -> Iterator[Perf]:
    """The `Perf` of one test (the `perf` fixture's, and the `benchmark` fixture's under
    --perf, issue 13); `overrides` replace fields of its `Settings`."""
    import dataclasses

    from ._fixture import Perf

    config = request.config
    cfg = config.stash[perf_config_key]
    node = request.node
    marker = PerfMarkerOptions.from_pytest_item(node)
    session = config.stash[perf_session_key]
    before_round, first = _with_reference(session, before_round_hook(config))
    settings = dataclasses.replace(cfg.settings(marker), **overrides)
    perf = Perf(node.nodeid, settings, session.device_lock, session.add, before_round)
    perf.profiler = _profiler(config, cfg, marker, node.nodeid)
    perf.progress = config.stash.get(perf_progress_key, None)
    yield perf
    session.reference.attach(session.measurements[first:])
    # After the test, while its callables exist: series slower than a baseline (judged as
    # the gate will judge them at the end of the session) are profiled now.
    perf.profiler.after_test(perf.sources, session)


def before_round_hook(config: pytest.Config) -> Callable[[], None]:
    """The engine's `before_round` hook for this session (every fixture that measures hands it
    on, as it hands on `device_lock`): under `perfsuite ab` it takes this process's turn."""
    turns = config.stash.get(perf_turns_key, None)
    return turns.before_round if turns is not None else _no_turns


def _no_turns() -> None:
    """Outside a `perfsuite ab` pair nothing waits for a turn."""


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
    if config.stash.get(perf_turns_key, None) is not None:
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
