"""pytest-benchmark suites under perfsuite (issue 13): the plugin that provides `benchmark`.

`BenchmarkPlugin` is registered at configure where perfsuite provides the fixture; the rest
lives in one module per concept, re-exported here for the plugin and the tests:

- `_benchmark_options`: which `benchmark` fixture a session gets (the precedence), and
  pytest-benchmark's command-line options and marker;
- `_benchmark_fixture`: the fixture object (`benchmark(fn, ...)`, `benchmark.pedantic`);
- `_benchmark_rounds`: the pedantic mode's fixed rounds, timed by perfsuite's instrument;
- `_benchmark_stats`: pytest-benchmark's statistics and its `--benchmark-json` document.

Tests using the fixture are selected by `--perf` without a `perf` marker (`measures`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._benchmark_fixture import BenchmarkFixture as BenchmarkFixture
from ._benchmark_options import MARKER_KEYS as MARKER_KEYS
from ._benchmark_options import PYTEST_BENCHMARK_MODULE as PYTEST_BENCHMARK_MODULE
from ._benchmark_options import PYTEST_BENCHMARK_OPTIONS as PYTEST_BENCHMARK_OPTIONS
from ._benchmark_options import USED_OPTIONS as USED_OPTIONS
from ._benchmark_options import add_compat_options as add_compat_options
from ._benchmark_options import after_conftests as after_conftests
from ._benchmark_options import before_conftests as before_conftests
from ._benchmark_options import deselected_note as deselected_note
from ._benchmark_options import given_options as given_options
from ._benchmark_options import marker_options as marker_options
from ._benchmark_options import pytest_benchmark_plugin as pytest_benchmark_plugin
from ._benchmark_options import wanted as wanted
from ._benchmark_rounds import SERIES_NAME as SERIES_NAME
from ._benchmark_stats import BenchmarkStats as BenchmarkStats
from ._benchmark_stats import pytest_benchmark_document as pytest_benchmark_document


class BenchmarkPlugin:
    """Registered at configure where perfsuite provides `benchmark` (`wanted`).

    `perf_for(request, **settings)` is the plugin's context manager that makes a test's
    `Perf` (None without `--perf`); `perf_session` the session's `PerfSession` (or None).
    """

    def __init__(self, config: pytest.Config, perf_for: Any, perf_session: Any):
        self.config = config
        self._perf_for = perf_for
        self._perf_session = perf_session
        opt = config.getoption
        self.disabled = bool(opt("benchmark_disable", False)) and not opt("benchmark_enable", False)
        self.skip = bool(opt("benchmark_skip", False))
        self.only = bool(opt("benchmark_only", False))
        self.json_path: Path | None = opt("benchmark_json", None)
        given = given_options(config)
        self.ignored = [f for f in given if f not in USED_OPTIONS]
        # Read only when given: pytest-benchmark's own defaults (5 rounds, 1 s) would
        # otherwise replace perfsuite's (and --perf-quick's) whenever its plugin parsed them.
        self.min_rounds = opt("benchmark_min_rounds") if "--benchmark-min-rounds" in given else None
        self.max_time = opt("benchmark_max_time") if "--benchmark-max-time" in given else None
        self.json_written: Path | None = None
        self.json_error: str | None = None
        config.addinivalue_line(
            "markers",
            "benchmark(group=None, min_rounds=None, max_time=None, ...): pytest-benchmark's "
            "marker, read by perfsuite's `benchmark` fixture (group, min_rounds, max_time).",
        )

    def measures(self, item: pytest.Item) -> bool:
        """Whether `--perf` selects `item` for using `benchmark` (without a `perf` marker)."""
        return "benchmark" in getattr(item, "fixturenames", ())

    @pytest.fixture
    def benchmark(self, request: pytest.FixtureRequest) -> Iterator[BenchmarkFixture]:
        """pytest-benchmark's `benchmark`, measured by perfsuite under `--perf` (README)."""
        node = request.node
        opts = marker_options(node)
        if self.skip and not self.only:
            pytest.skip("Benchmarks are skipped (--benchmark-skip was used).")
        group = opts.get("group")
        if self._perf_for is None or self.disabled:
            fixture = BenchmarkFixture(node, group, None)
            yield fixture
            fixture.check_extra_info()
            return
        with self._perf_for(request, **self._settings(node, opts)) as perf:
            fixture = BenchmarkFixture(node, group, perf)
            yield fixture
            fixture.check_extra_info()

    @pytest.fixture
    def benchmark_weave(self, benchmark: BenchmarkFixture):
        """pytest-benchmark's aspectlib fixture: not supported (the error says instead what)."""
        benchmark.weave()

    def _settings(self, node: pytest.Item, opts: dict[str, Any]) -> dict[str, Any]:
        """Settings overrides: the marker's over the options; a `perf` marker's rounds win."""
        out: dict[str, Any] = {}
        rounds = opts.get("min_rounds", self.min_rounds)
        max_time = opts.get("max_time", self.max_time)
        perf_marker = node.get_closest_marker("perf")
        if rounds is not None and not (perf_marker and "rounds" in perf_marker.kwargs):
            out["min_rounds"] = int(rounds)
        if max_time is not None:
            out["measure_s"] = float(max_time)
        return out

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # A bad marker is an error of the test even when it never asks for the fixture.
        marker_options(item)

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]):
        # pytest-benchmark's --benchmark-only (it overrides --benchmark-skip).
        if self.only:
            skip = pytest.mark.skip(reason="Skipping non-benchmark (--benchmark-only active).")
            for item in items:
                if not self.measures(item):
                    item.add_marker(skip)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.json_path is None or os.environ.get("PYTEST_XDIST_WORKER"):
            return
        from ._results import write_atomic

        path = Path(self.json_path)
        if not path.is_absolute():
            path = Path(self.config.invocation_params.dir) / path
        measurements = self._perf_session.serialisable() if self._perf_session else []
        doc = pytest_benchmark_document(measurements, Path(self.config.rootpath))
        try:
            write_atomic(path, json.dumps(doc, indent=4, allow_nan=False) + "\n")
        except OSError as exc:
            self.json_error = f"could not write {path}: {exc.strerror or exc}"
        else:
            self.json_written = path

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tr = terminalreporter
        if self.json_written is not None:
            n = len(json.loads(self.json_written.read_text())["benchmarks"])
            tr.write_line(
                f"perf: wrote {n} benchmarks in pytest-benchmark's JSON format to "
                f"{self.json_written}"
            )
        if self.json_error:
            tr.write_line(f"perf: --benchmark-json: {self.json_error}", yellow=True)
        if self.ignored:
            tr.write_line(
                "perf: pytest-benchmark options accepted without effect under perfsuite's "
                f"`benchmark` fixture: {', '.join(self.ignored)}",
                yellow=True,
            )
