"""Issue 13: pytest-benchmark suites run under perfsuite (its `benchmark` fixture's API).

The inner suites below are written the way public projects write theirs (parametrized
benchmarks with `extra_info`, `pedantic` with a setup that makes fresh data, groups by marker
and by attribute, a class-based suite, a conftest fixture feeding the data).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from perfsuite import _asv_export, _report
from perfsuite._benchmark_compat import BenchmarkStats
from perfsuite._results import iter_series, run_statistics, series, validate_document


CONFTEST = """
import pytest

@pytest.fixture(scope="module")
def payload():
    return {"ids": list(range(300)), "names": [f"n{i}" for i in range(300)]}
"""

#: Parametrized, extra_info, a group set by attribute, return values checked.
SUITE_PARAMS = """
import json
import pytest

@pytest.mark.parametrize("size", [10, 200])
def test_dumps(benchmark, size):
    data = list(range(size))
    out = benchmark(json.dumps, data, separators=(",", ":"))
    benchmark.extra_info["size"] = size
    benchmark.extra_info["bytes"] = len(out)
    assert json.loads(out) == data

def test_loads(benchmark, payload):
    benchmark.group = "loads"
    text = json.dumps(payload)
    assert benchmark(json.loads, text) == payload
"""

#: pedantic with setup (fresh data each round: sort in place), a group by marker, a class.
SUITE_PEDANTIC = """
import random
import pytest

SEEN = []

def make_list():
    data = list(range(500))
    random.Random(0).shuffle(data)
    return (data,), {}

@pytest.mark.benchmark(group="sort", min_rounds=3)
def test_sort_in_place(benchmark):
    def sort(data):
        # Every round gets unsorted data from setup: sorting sorted data would be faster.
        SEEN.append(data[:3] != [0, 1, 2])
        data.sort()
        return data[0]
    assert benchmark.pedantic(sort, setup=make_list, rounds=7, warmup_rounds=2) == 0
    # pytest-benchmark's calls exactly (the first call is the first warm-up round's).
    assert len(SEEN) == 9
    assert all(SEEN)

class TestSuite:
    @pytest.mark.benchmark(group="class")
    def test_iterations(self, benchmark):
        out = benchmark.pedantic(sum, args=(range(100),), rounds=4, iterations=5)
        assert out == 4950

    def test_no_warmup(self, benchmark):
        calls = []
        benchmark.pedantic(calls.append, args=(1,), rounds=3, iterations=2)
        # With no warm-up round, the first call (kept apart) is one more than asked for.
        assert len(calls) == 1 + 3 * 2
"""

#: Not a benchmark, not a perf test: `--perf` deselects it.
SUITE_PLAIN = """
def test_plain():
    assert True
"""


def _suites(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_params=SUITE_PARAMS, test_pedantic=SUITE_PEDANTIC, test_plain=SUITE_PLAIN
    )


PARAM_IDS = {
    "test_params.py::test_dumps[10]::benchmark",
    "test_params.py::test_dumps[200]::benchmark",
    "test_params.py::test_loads::benchmark",
}
PEDANTIC_IDS = {
    "test_pedantic.py::test_sort_in_place::benchmark",
    "test_pedantic.py::TestSuite::test_iterations::benchmark",
    "test_pedantic.py::TestSuite::test_no_warmup::benchmark",
}


def test_suites_under_perf_are_measured_into_perfsuites_json(run_perf, pytester, tmp_path):
    _suites(pytester)
    bench_json = tmp_path / "bench.json"
    result, doc = run_perf(
        "-p", "no:benchmark", f"--benchmark-json={bench_json}", "--benchmark-sort=mean"
    )
    # The plain test is deselected (not a perf test), the benchmarks run and pass.
    result.assert_outcomes(passed=6, deselected=1)
    validate_document(doc)
    by_id = {m["id"]: m for m in doc["measurements"]}
    assert set(by_id) == PARAM_IDS | PEDANTIC_IDS
    assert {m["kind"] for m in by_id.values()} == {"measure"}
    dumps = by_id["test_params.py::test_dumps[200]::benchmark"]
    info = dumps["benchmark"]
    assert info["name"] == "test_dumps[200]"
    assert info["fullname"] == "test_params.py::test_dumps[200]"
    assert info["params"] == {"size": 200}
    assert info["param"] == "200"
    # extra_info set after the call is in the results (read when they are written).
    assert info["extra_info"]["size"] == 200
    assert info["extra_info"]["bytes"] > 200
    assert info["mode"] == "benchmark(...)"
    # perfsuite's engine: first call kept apart, calibrated rounds, an instrument chosen.
    cand = dumps["candidate"]
    assert cand["first_call_s"] > 0
    assert cand["instrument"]["name"] == "host"
    assert len(cand["samples_s"]) >= 8  # --perf-quick's min_rounds
    assert cand["iterations_per_round"] > 1
    assert by_id["test_params.py::test_loads::benchmark"]["benchmark"]["group"] == "loads"

    sort = by_id["test_pedantic.py::test_sort_in_place::benchmark"]
    assert sort["benchmark"]["group"] == "sort"
    assert sort["benchmark"]["pedantic"] == {
        "rounds": 7,
        "warmup_rounds": 2,
        "iterations": 1,
        "setup": True,
        "teardown": False,
    }
    # Exactly the rounds asked for (pedantic is the user's control), one call per round.
    assert len(sort["candidate"]["samples_s"]) == 7
    assert sort["candidate"]["iterations_per_round"] == 1
    cls = by_id["test_pedantic.py::TestSuite::test_iterations::benchmark"]
    assert len(cls["candidate"]["samples_s"]) == 4
    assert cls["candidate"]["iterations_per_round"] == 5
    assert cls["benchmark"]["group"] == "class"

    # Every reader of results sees them as timed series (baselines, ab, asv, report).
    ids = PARAM_IDS | PEDANTIC_IDS
    assert {s.id for s in iter_series(doc) if s.timed} == ids
    assert set(series(doc)) == ids
    assert set(run_statistics(doc, None)) == ids
    assert {_asv_export.asv_name(sid) for sid in ids} <= set(_asv_export.benchmarks_from(doc))
    assert ids <= {row[0] for row in _report.rows(doc["measurements"])}

    # The terminal table: grouped by test, a `benchmark` row under each.
    out = result.stdout.str()
    for sid in ids:
        assert sid.rsplit("::", 1)[0] in out
    assert "  benchmark " in out
    # The pedantic test's row: its 7 rounds in the rounds column.
    lines = result.stdout.lines
    head = lines.index("test_pedantic.py::test_sort_in_place")
    header, row = lines[head + 1], lines[head + 2]
    assert row.startswith("  benchmark ")
    rounds_at = header.index("rounds")
    assert row[rounds_at : rounds_at + 6].strip() == "7", (header, row)
    assert "perf: 6 measured in 6 tests" in out

    # --benchmark-json: pytest-benchmark's format, from the same measurements.
    assert f"perf: wrote 6 benchmarks in pytest-benchmark's JSON format to {bench_json}" in out
    bj = json.loads(bench_json.read_text())
    assert set(bj) >= {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    entries = {b["fullname"]: b for b in bj["benchmarks"]}
    assert set(entries) == {sid.rsplit("::", 1)[0] for sid in ids}
    e = entries["test_pedantic.py::test_sort_in_place"]
    assert e["group"] == "sort"
    assert e["name"] == "test_sort_in_place"
    assert e["stats"]["rounds"] == 7 == len(e["stats"]["data"])
    assert e["stats"]["data"] == sort["candidate"]["samples_s"]
    assert e["stats"]["min"] <= e["stats"]["median"] <= e["stats"]["max"]
    assert entries["test_params.py::test_dumps[200]"]["extra_info"]["size"] == 200
    # An option perfsuite accepts but does not use is named, not silently dropped.
    assert "accepted without effect under perfsuite's `benchmark` fixture: --benchmark-sort" in out


def test_without_perf_the_function_runs_once_and_returns_its_result(pytester, tmp_path):
    pytester.makepyfile(
        test_once="""
        import pytest

        CALLS = []

        def work(x, *, y):
            CALLS.append(x)
            return x + y

        def test_call(benchmark):
            assert benchmark(work, 1, y=2) == 3
            assert CALLS == [1] and benchmark.disabled and benchmark.stats is None

        def test_pedantic(benchmark):
            made = []
            def setup():
                made.append(1)
                return (5,), {"y": 1}
            assert benchmark.pedantic(work, setup=setup, rounds=50) == 6
            assert made == [1]

        @pytest.mark.perf
        def test_perf_only(perf):
            pass
        """
    )
    bench_json = tmp_path / "empty.json"
    result = pytester.runpytest(
        "-p", "no:benchmark", "-p", "no:cacheprovider", f"--benchmark-json={bench_json}"
    )
    result.assert_outcomes(passed=2, skipped=1)
    # The file a CI step uploads exists, with no benchmarks in it.
    assert json.loads(bench_json.read_text())["benchmarks"] == []


def test_benchmark_disable_runs_once_even_under_perf(run_perf, pytester):
    pytester.makepyfile(
        test_dis="""
        CALLS = []

        def test_call(benchmark):
            assert benchmark(lambda: CALLS.append(1) or 7) == 7
            assert CALLS == [1]
        """
    )
    result, doc = run_perf("-p", "no:benchmark", "--benchmark-disable")
    result.assert_outcomes(passed=1)
    assert doc["measurements"] == []


def test_misuse_is_an_error_naming_the_rule(pytester):
    pytester.makepyfile(
        test_bad="""
        import pytest
        from perfsuite import PerfUsageError

        def test_twice(benchmark):
            benchmark(sum, [1])
            with pytest.raises(PerfUsageError, match="can only be used once per test"):
                benchmark(sum, [1])

        def test_iterations_with_setup(benchmark):
            with pytest.raises(ValueError, match="more than 1 `iterations` with a `setup`"):
                benchmark.pedantic(sum, setup=lambda: None, iterations=2)

        def test_rounds(benchmark):
            with pytest.raises(ValueError, match="`rounds` must be a positive int, got 0"):
                benchmark.pedantic(sum, args=([1],), rounds=0)

        def test_setup_and_args(benchmark):
            with pytest.raises(PerfUsageError, match="can't use `args` or `kwargs` when"):
                benchmark.pedantic(sum, args=([1],), setup=lambda: (([2],), {}))

        @pytest.mark.benchmark(grup="x")
        def test_marker(benchmark):
            pass

        def test_weave(benchmark_weave):
            pass

        def test_extra_info_not_json(benchmark):
            benchmark(sum, [1])
            benchmark.extra_info["obj"] = object()
        """
    )
    result = pytester.runpytest("-p", "no:benchmark", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, errors=3)
    out = result.stdout.str()
    assert "`benchmark.weave`/`benchmark.patch` (aspectlib) are not supported" in out
    assert "benchmark marker got unknown keyword argument(s) ['grup']" in out
    assert "`benchmark.extra_info['obj']` must be a JSON value" in out


def test_which_fixture_wins(pytester, run_perf):
    """pytest-benchmark active: its fixture, and --perf leaves its tests out (with a note);
    --perf-benchmark-fixture: perfsuite's, with pytest-benchmark's options still parsed."""
    pytest.importorskip("pytest_benchmark")
    pytester.makepyfile(
        test_which="""
        def test_which(benchmark):
            print("FIXTURE", type(benchmark).__module__)
            assert benchmark(sum, [1, 2]) == 3
        """
    )
    plain = pytester.runpytest("-p", "no:cacheprovider", "-s", "--benchmark-disable")
    plain.assert_outcomes(passed=1)
    assert "FIXTURE pytest_benchmark.fixture" in plain.stdout.str()
    result, _ = run_perf()
    result.assert_outcomes(deselected=1)
    assert "1 tests use pytest-benchmark's `benchmark` fixture and were deselected" in (
        result.stdout.str()
    )
    args = ("--perf-benchmark-fixture", "-s", "--benchmark-max-time=0.000001")
    bench_json = pytester.path / "bench.json"
    result, doc = run_perf(*args, "--benchmark-min-rounds=12", f"--benchmark-json={bench_json}")
    result.assert_outcomes(passed=1)
    assert "FIXTURE perfsuite._benchmark_fixture" in result.stdout.str()
    (m,) = doc["measurements"]
    assert m["id"] == "test_which.py::test_which::benchmark"
    # pytest-benchmark's own options, parsed by it, read by perfsuite: 12 rounds first, then
    # one batch of half as many again (`perf.measure`), since the 1 us of further rounds
    # (`--benchmark-max-time`) is spent by then: 18 in all. Without the rounds option it is
    # --perf-quick's 8 + 4 (pytest-benchmark's default of 5 is not taken for perfsuite's).
    assert len(m["candidate"]["samples_s"]) == 18
    # Its plugin is gone for the session: perfsuite writes the --benchmark-json it parsed.
    (entry,) = json.loads(bench_json.read_text())["benchmarks"]
    assert entry["stats"]["rounds"] == 18
    _, doc = run_perf(*args)
    assert len(doc["measurements"][0]["candidate"]["samples_s"]) == 12


def test_jax_outputs_are_waited_for(run_perf, pytester):
    """The instrument follows the output, as for `perf.measure`: JAX arrays are synced."""
    # Not imported here: pytester removes the modules a test imported when it ends, and a
    # second import of jaxlib in this process aborts it. The inner run is a subprocess.
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    pytester.makepyfile(
        test_jax="""
        import jax.numpy as jnp

        def test_jax(benchmark):
            x = jnp.ones((64, 64))
            assert float(benchmark(lambda a: (a @ a).sum(), x)) == 64.0 * 64 * 64

        def test_setup_work_is_not_timed(benchmark):
            import time
            import jax
            x = jnp.full((256, 256), 1e-3)
            slow = jax.jit(lambda x: jax.lax.fori_loop(0, 30, lambda i, y: jnp.tanh(y @ x), x))
            slow(x).block_until_ready()
            t0 = time.perf_counter()
            slow(x).block_until_ready()
            benchmark.extra_info["setup_s"] = time.perf_counter() - t0
            add = jax.jit(lambda y: y + 1)
            benchmark.pedantic(add, setup=lambda: ((slow(x),), {}), rounds=5, warmup_rounds=1)
        """
    )
    result, doc = run_perf("-p", "no:benchmark", subprocess=True)
    result.assert_outcomes(passed=2)
    call, pedantic = doc["measurements"]
    assert call["candidate"]["instrument"]["name"] == "jax"
    assert pedantic["candidate"]["instrument"]["name"] == "jax"
    # JAX dispatches asynchronously: the setup's result is waited for before the clock
    # starts, so a round times the add (microseconds), not the setup's 30 matmuls. The
    # margin (a third of the setup's time) is wide against a loaded machine's noise.
    setup_s = pedantic["benchmark"]["extra_info"]["setup_s"]
    assert pedantic["candidate"]["per_call_s"] < setup_s / 3, (pedantic["candidate"], setup_s)


def test_stats_are_pytest_benchmarks():
    """`benchmark.stats` and the JSON use pytest-benchmark's definitions (checked against
    pytest-benchmark's own `Stats` where it is installed, and against hand values)."""
    data = [5.0, 1.0, 3.0, 2.0, 4.0, 100.0, 2.5]
    s = BenchmarkStats(data, 1)
    assert (s.min, s.max, s.median, s.rounds) == (1.0, 100.0, 3.0, 7)
    assert s["mean"] == pytest.approx(sum(data) / 7)
    assert s.iqr_outliers == 1
    assert s.hd15iqr == 5.0
    assert s.ld15iqr == 1.0
    with pytest.raises(KeyError, match="not a benchmark statistic"):
        s["p99"]
    stats_mod = pytest.importorskip("pytest_benchmark.stats")
    for sample in (data, data[:6], data[:5], data[:4], [2.0]):
        ref = stats_mod.Stats()
        for v in sample:
            ref.update(v)
        ours = BenchmarkStats(sample, 1).as_dict()
        for key, value in ref.as_dict().items():
            assert ours[key] == (value if isinstance(value, str) else pytest.approx(value)), key


def test_options_are_accepted_while_pytest_benchmark_is_inactive(pytester):
    pytester.makepyfile(test_x="def test_x(benchmark):\n    assert benchmark(len, 'ab') == 2\n")
    result = pytester.runpytest(
        "-p",
        "no:benchmark",
        "-p",
        "no:cacheprovider",
        "--benchmark-min-rounds=3",
        "--benchmark-compare",
        "--benchmark-columns=min,max",
        "--benchmark-histogram",
    )
    result.assert_outcomes(passed=1)
    assert "--benchmark-compare, --benchmark-columns, --benchmark-histogram" in (
        result.stdout.str()
    )
    bad = pytester.runpytest("-p", "no:benchmark", "--benchmark-min-rounds=0")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "--benchmark-min-rounds" in bad.stderr.str()


def test_baselines_see_benchmarks(pytester, run_perf):
    pytester.makepyfile(test_b="def test_b(benchmark):\n    benchmark(sum, range(200))\n")
    saved, _ = run_perf("-p", "no:benchmark", "--perf-save=main")
    saved.assert_outcomes(passed=1)
    (stored,) = Path(pytester.path, ".perf").glob("*/0001_main.json")
    assert "test_b.py::test_b::benchmark" in series(json.loads(stored.read_text()))


def test_benchmark_skip_and_only(pytester):
    pytester.makepyfile(
        test_so="""
        def test_bench(benchmark):
            assert benchmark(len, "abc") == 3

        def test_plain():
            pass
        """
    )
    base = ("-p", "no:benchmark", "-p", "no:cacheprovider", "-rs")
    only = pytester.runpytest(*base, "--benchmark-only")
    only.assert_outcomes(passed=1, skipped=1)
    assert "Skipping non-benchmark (--benchmark-only active)" in only.stdout.str()
    skip = pytester.runpytest(*base, "--benchmark-skip")
    skip.assert_outcomes(passed=1, skipped=1)
    assert "--benchmark-skip was used" in skip.stdout.str()
