"""Memory as a metric (issue 14): sources, sizes, `perf.memory`, `.memory`, and the gate.

Host RSS readings are bounded by the calibrated tolerance (`HOST_RSS_TOLERANCE` of the
allocation plus `HOST_RSS_SLACK_BYTES`, docs/calibration-memory.md); XLA's static analysis is
checked to the byte against `memory_analysis()` itself. CUDA tests run only with CUDA.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from perfsuite import _memory_sources
from perfsuite._errors import PerfUsageError
from perfsuite._memory import (
    HOST_RSS_SLACK_BYTES,
    HOST_RSS_TOLERANCE,
    MemoryStats,
    analyse_jitted,
    check_growth,
    measure_call,
)
from perfsuite._memory_gate import apply_memory, judge_memory
from perfsuite._values import parse_size, parse_size_arg


MiB = 2**20
#: Host allocations in these tests are above glibc's largest mmap threshold (32 MiB), so each
#: one maps fresh pages the RSS sees; smaller blocks may be recycled from the heap without the
#: kernel, and then read 0 (docs/calibration-memory.md).
host = pytest.mark.skipif(
    not _memory_sources._HostRss.available(), reason="needs /proc/self/clear_refs (Linux)"
)


def _within(stats: MemoryStats, expected: int) -> bool:
    """A host-rss peak of a call that allocates (and touches) `expected` bytes, within the
    calibrated tolerance either way (a few pages resident before the call can be freed
    during it: 128 MiB read 100-230 KiB short in the calibration)."""
    slack = HOST_RSS_TOLERANCE * expected + HOST_RSS_SLACK_BYTES
    return abs(stats.peak_bytes - expected) <= slack


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 GiB", 2 * 2**30),
        ("512MB", 512 * 10**6),
        ("1.5 KiB", 1536),
        ("3gib", 3 * 2**30),
        ("100", 100),
        ("100 B", 100),
        ("0", 0),
    ],
)
def test_sizes_parse_with_binary_and_decimal_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected
    assert parse_size_arg(text, "at_most") == expected


@pytest.mark.parametrize("bad", ["", "lots", "2 XB", "-1 MiB", "2 GiB GiB", "1e9", "GiB"])
def test_a_bad_size_string_names_the_argument_and_gives_an_example(bad: str) -> None:
    with pytest.raises(PerfUsageError, match=r"`at_most`.*e\.g\. 2147483648, '2 GiB' or '512MB'"):
        parse_size_arg(bad, "at_most")


@pytest.mark.parametrize("bad", [-1, True, None, 1.5e400 * 0, float("inf"), [1]])
def test_a_bad_size_value_names_the_argument(bad) -> None:
    if bad == 0:  # 1.5e400 * 0 is nan
        bad = float("nan")
    with pytest.raises(PerfUsageError, match="`at_most`"):
        parse_size_arg(bad, "at_most")


# --------------------------------------------------------------------------- host RSS


def _numpy_temporary(mib: int):
    def fn():
        a = np.ones(mib * MiB // 8)  # touched: every page becomes resident
        return float(a[-1])

    return fn


@host
def test_numpy_128_mib_temporary_reads_128_mib() -> None:
    stats = measure_call(_numpy_temporary(128), "host")
    assert stats.source == "host-rss"
    assert not stats.exact
    assert _within(stats, 128 * MiB), stats
    # A temporary: nothing of it is left once the call returned.
    assert abs(stats.retained_bytes) <= HOST_RSS_SLACK_BYTES, stats


@host
def test_torch_cpu_256_mib_temporary_reads_256_mib() -> None:
    torch = pytest.importorskip("torch")

    def fn():
        t = torch.ones(256 * MiB // 4)
        return t[-1].item()

    measure_call(fn, "host")  # torch's first large allocation sets up its allocator
    stats = measure_call(fn, "host")
    assert stats.source == "host-rss"
    assert _within(stats, 256 * MiB), stats


@host
def test_host_readings_repeat_within_the_calibrated_tolerance() -> None:
    fn = _numpy_temporary(64)
    peaks = [measure_call(fn, "host").peak_bytes for _ in range(10)]
    assert max(peaks) - min(peaks) <= HOST_RSS_TOLERANCE * 64 * MiB + HOST_RSS_SLACK_BYTES, peaks


@host
def test_host_aa_never_fails_the_gate() -> None:
    """20 readings of one call, each judged against every other: never a regression."""
    fn = _numpy_temporary(48)
    readings = [measure_call(fn, "host") for _ in range(20)]
    for current in readings:
        for baseline in readings:
            assert check_growth("s", current, baseline, 0.0)["verdict"] == "pass"


@host
def test_a_doubled_host_allocation_is_a_regression() -> None:
    base = measure_call(_numpy_temporary(48), "host")
    doubled = measure_call(_numpy_temporary(96), "host")
    v = check_growth("t::alloc::memory", doubled, base, 0.0)
    assert v["verdict"] == "regression", v
    assert v["source"] == "host-rss"


# --------------------------------------------------------------------------- XLA static


def _outer_cumsum(n: int, m: int | None = None):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    # The outer product cannot be fused into the strided sum: a cumulative sum needs all of
    # it, so XLA must hold an (n, m) float32 temporary.
    def f(x, y):
        return jnp.cumsum(jnp.outer(x, y), axis=0)[::7, ::7].sum()

    return jax.jit(f), jnp.ones(n, jnp.float32), jnp.ones(m or n, jnp.float32)


def test_jitted_jax_temporary_is_read_from_memory_analysis_to_the_byte() -> None:
    f, x, y = _outer_cumsum(4096)
    stats = analyse_jitted(f, x, y)
    ma = f.lower(x, y).compile().memory_analysis()
    assert stats.source == "xla-memory-analysis"
    assert stats.exact
    assert stats.extra["temp_bytes"] == ma.temp_size_in_bytes
    assert stats.extra["argument_bytes"] == ma.argument_size_in_bytes == 2 * 4096 * 4
    assert stats.peak_bytes == (
        ma.output_size_in_bytes + ma.temp_size_in_bytes - ma.alias_size_in_bytes
    )
    # The known temporary: the 4096 x 4096 float32 outer product, 64 MiB.
    assert stats.peak_bytes >= 64 * MiB
    assert stats.retained_bytes == 4  # the scalar result


def test_memory_analysis_aa_never_fails_and_a_doubled_temporary_does() -> None:
    f, x, y = _outer_cumsum(1024)
    readings = [analyse_jitted(f, x, y) for _ in range(20)]
    assert len({r.peak_bytes for r in readings}) == 1  # exact: to the byte
    assert all(check_growth("s", r, readings[0], 0.0)["verdict"] == "pass" for r in readings)
    g, x2, y2 = _outer_cumsum(1024, 2048)
    doubled = analyse_jitted(g, x2, y2)
    v = check_growth("t::step", doubled, readings[0], 0.0)
    assert v["verdict"] == "regression"
    assert v["peak_bytes"] >= 2 * readings[0].peak_bytes - 8 * 2048
    # Growth within --perf-fail-memory passes.
    assert check_growth("t::step", doubled, readings[0], 1.5)["verdict"] == "pass"


def test_donation_frees_params_and_optimizer_state() -> None:
    """trainfast.eqx: with `donate=True` the outputs reuse the inputs' buffers, exactly the
    model's and optimizer's arrays (XLA's alias bytes), so the call's new allocations shrink
    by that much: the step no longer holds two copies of its state at its end.

    On XLA:CPU the *peak* does not shrink by the full state: buffer assignment then needs
    temporaries that, without donation, it placed in the (fresh) output buffers; the peak
    still drops, and the runtime peak on a GPU is measured by scripts/h200_memory.py.
    """
    jax = pytest.importorskip("jax")
    eqx = pytest.importorskip("equinox")
    from trainfast.eqx._bert import mlm_loss
    from trainfast.eqx._train_step import make_train_step
    from trainfast.eqx._workloads import train_step_workload

    w = train_step_workload("cached", 1)
    model, opt = w.state
    batch, key = w.batches[0]
    state_bytes = sum(x.nbytes for x in jax.tree.leaves((model, opt)) if eqx.is_array(x))
    on, off = (
        analyse_jitted(
            make_train_step(mlm_loss, dispatch="cached", donate=d), model, opt, batch, key
        )
        for d in (True, False)
    )
    assert on.extra["alias_bytes"] == state_bytes, (on, state_bytes)
    assert off.extra["alias_bytes"] == 0
    # What the call leaves allocated beside its inputs: the new state without donation,
    # only the (small) loss outputs with it.
    assert off.retained_bytes - on.retained_bytes == state_bytes
    assert on.retained_bytes < 0.01 * state_bytes
    assert on.peak_bytes < off.peak_bytes


# --------------------------------------------------------------------------- the gate


def _reading(peak: int, source: str = "xla-memory-analysis", exact: bool = True) -> dict:
    return MemoryStats(peak, 0, source, exact).as_dict()


def test_the_gate_verdict_names_series_both_byte_counts_and_the_source() -> None:
    doc = {
        "measurements": [
            {
                "kind": "memory",
                "id": "t::step",
                "test": "t",
                "name": "step",
                "memory": _reading(2 * MiB),
            }
        ]
    }
    (v,) = apply_memory(doc, [{"t::step": _reading(MiB)}], None, "main")
    assert v["verdict"] == "regression"
    from perfsuite._memory import memory_message

    text = memory_message(v)
    assert "t::step" in text
    assert str(2 * MiB) in text
    assert str(MiB) in text
    assert "xla-memory-analysis" in text
    assert doc["measurements"][0]["memory_baselines"] == [v]


def test_different_sources_and_upper_bounds_are_not_judged() -> None:
    v = judge_memory("s", [_reading(2 * MiB)], [_reading(MiB, "host-rss", False)], 0.0)
    assert v["verdict"] == "not judged"
    bound = MemoryStats(2 * MiB, 0, "jax-device", False, {"peak_is_upper_bound": 1}).as_dict()
    v = judge_memory("s", [bound], [_reading(MiB, "jax-device")], 0.0)
    assert v["verdict"] == "not judged"


# --------------------------------------------------------------------------- through pytest


API = """
import os

import numpy as np
import pytest

MiB = 2**20


def alloc(mib):
    def fn():
        a = np.ones(mib * MiB // 8)
        return float(a[-1])
    return fn


@pytest.mark.perf
def test_limit(perf):
    perf.memory(alloc(96), name="big", at_most="48 MiB")


@pytest.mark.perf
def test_bad_limit(perf):
    perf.memory(alloc(1), name="bad", at_most="lots")


@pytest.mark.perf
def test_compare(perf):
    cmp = perf.compare(small=alloc(40), big=alloc(80))
    assert 79 * MiB <= cmp.memory("big").peak_bytes <= 81 * MiB
    assert 39 * MiB <= cmp.memory("small").peak_bytes <= 41 * MiB
    cmp.assert_memory_no_more("small", than="big")
    cmp.assert_memory_no_more("big", than="small")


@pytest.mark.perf
def test_measure_and_steps(perf):
    m = perf.measure(alloc(40), name="one")
    assert m.memory.peak_bytes >= 39 * MiB and m.memory.source == "host-rss"
    def step(state, batch):
        return state + float(np.ones(batch * MiB // 8)[-1])
    s = perf.steps(step, 0.0, [40], n=4, name="loop")
    assert s.memory.peak_bytes >= 39 * MiB
"""


@host
def test_the_api_through_pytest(run_perf, pytester) -> None:
    pytester.makepyfile(test_api=API)
    result, doc = run_perf()
    result.assert_outcomes(passed=1, failed=3)
    text = result.stdout.str()
    # at_most fails with the numbers and the rule.
    result.stdout.fnmatch_lines(
        ["*`memory` big: peak 9* MiB*; required peak <= 48 MiB (50331648 bytes)*"]
    )
    assert "`at_most`='lots' is not a size" in text
    assert "'2 GiB'" in text
    result.stdout.fnmatch_lines(["*`assert_memory_no_more`: big peak * bytes*vs small peak*"])
    by_id = {m["id"]: m for m in doc["measurements"]}
    assert by_id["test_api.py::test_limit::big"]["memory"]["peak_bytes"] >= 95 * MiB
    verdicts = by_id["test_api.py::test_compare::small+big"]["comparison"]["verdicts"]
    assert [v["verdict"] for v in verdicts] == ["pass", "fail"]
    steps = by_id["test_api.py::test_measure_and_steps::loop"]["steps"]
    assert steps["memory"]["peak_bytes"] >= 39 * MiB


GATE = """
import os

import numpy as np
import pytest

MIB = int(os.environ["MEM_MIB"])


@pytest.mark.perf
def test_alloc(perf):
    def fn():
        return float(np.ones(MIB * 2**20 // 8)[-1])
    perf.measure(fn, name="alloc")
"""


@host
def test_the_gate_fails_a_doubled_allocation_and_passes_the_same(
    pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_gate=GATE)

    def run(mib: int, *args: str):
        monkeypatch.setenv("MEM_MIB", str(mib))
        return pytester.runpytest("--perf", "--perf-quick", "-p", "no:cacheprovider", *args)

    run(48, "--perf-save=main").assert_outcomes(passed=1)
    out = pytester.path / "cur.json"
    same = run(48, "--perf-compare=main", "--perf-fail-memory=0", f"--perf-json={out}")
    assert same.ret == 0, same.stdout.str()
    (v,) = json.loads(out.read_text())["measurements"][0]["memory_baselines"]
    assert v["verdict"] == "pass"
    assert v["source"] == "host-rss"
    doubled = run(96, "--perf-compare=main", "--perf-fail-memory=0")
    assert doubled.ret == pytest.ExitCode.TESTS_FAILED, doubled.stdout.str()
    doubled.stdout.fnmatch_lines(
        [
            "*REGRESSION memory test_gate.py::test_alloc::alloc::memory: peak 10* bytes "
            "(9* MiB) vs baseline 5* bytes (4* MiB), source host-rss; *"
        ]
    )


# --------------------------------------------------------------------------- CUDA (H200)


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="needs CUDA")
def test_torch_cuda_exactly_one_gib_reads_one_gib() -> None:
    import torch

    def fn():
        # Not `t.sum()`: torch sums uint8 in int64 and makes an 8 GiB int64 copy first
        # (the H200 read 9 GiB for that call, which is exactly what it needs).
        t = torch.empty(2**30, dtype=torch.uint8, device="cuda")
        t.fill_(1)
        return t[:1].clone()

    fn()
    stats = measure_call(fn, "torch-cuda")
    assert stats.source == "torch-cuda"
    assert stats.exact
    # 1 GiB, plus the allocator's rounding and the sum's small result and workspace.
    assert 2**30 <= stats.peak_bytes <= 2**30 + 2 * MiB, stats
    assert measure_call(fn, "torch-cuda").peak_bytes == stats.peak_bytes


def _jax_gpu() -> bool:
    try:
        import jax
    except ImportError:
        return False
    return jax.default_backend() in ("gpu", "cuda", "rocm", "tpu")


@pytest.mark.skipif(not _jax_gpu(), reason="needs JAX on a GPU or TPU")
def test_jax_device_peak_of_a_known_temporary() -> None:
    f, x, y = _outer_cumsum(8192)  # a 256 MiB temporary
    static = analyse_jitted(f, x, y)
    f(x, y).block_until_ready()
    stats = measure_call(lambda: f(x, y), "jax")
    assert stats.source == "jax-device"
    if not stats.upper_bound_only:
        # The runtime reads at least XLA's temporaries (plus allocator rounding).
        assert static.extra["temp_bytes"] <= stats.peak_bytes <= 1.1 * static.peak_bytes + MiB


class _FakeDevice:
    """A device allocator as `memory_stats()` reports it: in use, and a mark that never
    resets (what JAX's BFC allocator does on a GPU)."""

    def __init__(self, limit: int):
        self.in_use = self.peak = 0
        self.limit = limit

    def stats(self) -> dict:
        return {
            "bytes_in_use": self.in_use,
            "peak_bytes_in_use": self.peak,
            "bytes_limit": self.limit,
        }

    def alloc(self, n: int) -> None:
        self.in_use += n
        self.peak = max(self.peak, self.in_use)

    def free(self, n: int) -> None:
        self.in_use -= n


class _FakeBuffer:
    def __init__(self, dev: _FakeDevice, n: int):
        self.dev, self.nbytes = dev, n
        dev.alloc(n)

    def block_until_ready(self):
        return self

    def __del__(self):
        self.dev.free(self.nbytes)


@pytest.mark.parametrize(("limit", "exact"), [(1000 * MiB, True), (200 * MiB, False)])
def test_jax_device_peak_is_exact_below_an_earlier_mark_thanks_to_the_ballast(
    monkeypatch: pytest.MonkeyPatch, limit: int, exact: bool
) -> None:
    """An earlier call peaked at 100 MiB; this one needs 10 MiB. With a ballast (allowed up
    to 25% of the limit) the reading is 10 MiB exactly; where the ballast would be too large
    (100 MiB of a 200 MiB device) it is the upper bound, 100 MiB, and says so."""
    jnp = pytest.importorskip("jax.numpy")
    dev = _FakeDevice(limit)
    monkeypatch.setattr(_memory_sources, "_jax_device_stats", lambda: [dev.stats()])
    monkeypatch.setattr(jnp, "zeros", lambda shape, dtype, device=None: _FakeBuffer(dev, shape[0]))
    dev.alloc(100 * MiB)
    dev.free(100 * MiB)  # the earlier call: a mark of 100 MiB, nothing left in use

    def call():
        tmp = _FakeBuffer(dev, 10 * MiB)
        del tmp

    src = _memory_sources._JaxDevice()
    src.begin()
    call()
    stats = src.end()
    assert stats.exact is exact
    assert stats.upper_bound_only is not exact
    assert stats.peak_bytes == (10 * MiB if exact else 100 * MiB)
    assert dev.in_use == 0  # the ballast is freed


# --------------------------------------------------------------------------- perfsuite ab


@pytest.mark.parametrize(("head_peak", "code"), [(48 * MiB, 0), (96 * MiB, 1)])
def test_perfsuite_ab_judges_memory_and_a_regression_sets_the_exit_code(
    tmp_path, head_peak: int, code: int
) -> None:
    """Same time on both sides; HEAD's memory unchanged (A/A, 20 run pairs: never fails) or
    doubled (exit 1, the verdict naming the series, both byte counts and the source)."""
    from _ab_repo import make_repo

    from perfsuite import ab as _ab
    from perfsuite._options import FailExpr
    from perfsuite.ab import render_text

    repo = make_repo(tmp_path)
    rng = np.random.default_rng(0)
    sid = "t.py::test::x" + "::memory"

    def runner(cfg, side, index, tree, out):
        peak = head_peak if side == "HEAD" else 48 * MiB
        # host-rss readings jitter by up to 0.3 MiB (docs/calibration-memory.md)
        reading = MemoryStats(peak + int(rng.integers(-300_000, 300_000)), 0, "host-rss", False)
        stats = {"t.py::test::x": ("median", 1e-3 * float(np.exp(rng.normal(0, 0.003))))}
        return _ab.RunResult(side, index, 0.01, 0, stats, {sid: reading.as_dict()})

    cfg = _ab.AbConfig(
        base="HEAD~1", head="HEAD", pytest_args=(), fail=FailExpr("median", 0.05), repo=repo,
        min_runs=20, max_runs=20,
    )  # fmt: skip
    doc = _ab.run_ab(cfg, runner=runner)
    (v,) = doc["memory"]
    assert v["series"] == sid
    assert v["verdict"] == ("pass" if code == 0 else "regression")
    assert doc["exit_code"] == code
    text = render_text(doc)
    assert f"memory {sid}: peak" in text
    assert "source host-rss" in text
