"""The exact tier (issue 15): counts per call, `perf.counts`, candidate counts, the gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from perfsuite import _baseline, _count_gate
from perfsuite._counts import Counts, check_at_most, compare_counts, measure_counts
from perfsuite._errors import PerfFailure, PerfUsageError
from perfsuite._options import FailExpr


def _one() -> int:
    return 1


def _calls(n: int) -> int:
    return sum(_one() for _ in range(n))


# --------------------------------------------------------------------------- counting


@pytest.mark.parametrize("n", [0, 1, 7, 100])
def test_python_calls_are_exact(n):
    # The lambda, `_calls`, the generator (started once, resumed n times) and n `_one`s:
    # 1 + 1 + (n + 1) + n, whatever the machine's load.
    counts = measure_counts(lambda: _calls(n))
    assert counts["python_calls"] == 2 * n + 3
    assert counts.unstable == {}
    assert counts.deterministic("python_calls")
    if n > 1:
        top = [name for name, _ in counts.top_python_calls]
        assert top[0].endswith("_calls.<locals>.<genexpr>")
        assert top[1].endswith("_one")


def test_a_counter_whose_readings_differ_is_unstable_and_never_passes_at_most():
    state = {"n": 0}

    def grows():
        state["n"] += 1
        return _calls(state["n"])

    counts = measure_counts(grows)
    assert counts.unstable == {"python_calls": [5, 7]}
    assert not counts.deterministic("python_calls")
    with pytest.raises(
        PerfFailure, match=r"python_calls is non-deterministic \(readings \[5, 7\]\)"
    ):
        check_at_most(counts, {"python_calls": 1000}, "`grows`")


def test_at_most_fails_with_the_numbers_and_rejects_bad_input():
    counts = measure_counts(lambda: _calls(10))
    check_at_most(counts, {"python_calls": 23}, "`x`")
    with pytest.raises(PerfFailure, match=r"python_calls 23 > at most 22 \(\+1\)"):
        check_at_most(counts, {"python_calls": 22}, "`x`")
    with pytest.raises(PerfUsageError, match="unknown counter 'pyton_calls'"):
        check_at_most(counts, {"pyton_calls": 1}, "`x`")
    with pytest.raises(PerfUsageError, match=r"`at_most\['python_calls'\]` must be a number >= 0"):
        check_at_most(counts, {"python_calls": -1}, "`x`")
    with pytest.raises(PerfUsageError, match="`at_most` must be a mapping"):
        check_at_most(counts, 3, "`x`")  # type: ignore[arg-type]


def test_jax_counts_see_every_execution_and_xla_costs():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    @jax.jit
    def f(x):
        return jnp.tanh(x @ x).sum()

    x = jnp.ones((32, 32))
    f(x).block_until_ready()
    once = measure_counts(lambda: f(x))
    thrice = measure_counts(lambda: [f(x) for _ in range(3)][-1])
    assert once["python_calls"] == 1  # the lambda: the jitted call's fast path is C++
    assert once["compilations"] == 0
    assert once["traces"] == 0
    # A 32x32 matmul is 2 * 32^3 FLOPs by XLA's model (plus the reduction's adds).
    assert 2 * 32**3 <= once["xla_flops"] < 2 * 32**3 + 2 * 32 * 32
    assert once["xla_transcendentals"] == 32 * 32
    assert once["xla_executions"] == 1
    assert thrice["xla_executions"] == 3
    assert thrice["xla_flops"] == 3 * once["xla_flops"]
    assert once["hlo_fusions"] >= 1
    assert once.info["matmul_dtype"] == "f32"
    # The device-work readings leave no entry on the Python path: one call sets the fast
    # path up again, after which a call makes no Python call.
    f(x)
    assert measure_counts(lambda: f(x), work=False)["python_calls"] == 1


def test_jax_counts_see_a_retrace():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    f = jax.jit(lambda x: x * 2)
    # Arrays made beforehand: making one of a new shape compiles too.
    xs = iter([jnp.ones(n) for n in range(1, 10)])
    counts = measure_counts(lambda: f(next(xs)), work=False)
    assert counts["compilations"] == 1
    assert counts["traces"] >= 1


def test_torch_counts_flops_and_aten_ops():
    torch = pytest.importorskip("torch")
    a = torch.ones(16, 32)
    b = torch.ones(32, 8)
    counts = measure_counts(lambda: (a @ b).relu())
    assert counts["torch_flops"] == 2 * 16 * 32 * 8
    assert counts["aten_ops"] == 2
    assert counts.info["matmul_dtype"] == "float32"


def _compiled_regions(torch, fn) -> int:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.name.startswith("Torch-Compiled Region") for e in prof.events())


def test_counting_a_compiled_function_leaves_it_compiled():
    # A compiled frame called under a TorchDispatchMode (the aten counter) falls back to
    # eager and Dynamo keeps that choice: the engine counts before the timed rounds, so a
    # `torch.compile`d candidate was timed eagerly (H200: SPD `compile` read eager's 1119
    # kernels per step).
    torch = pytest.importorskip("torch")
    if not hasattr(torch.compiler, "set_stance"):
        pytest.skip("torch < 2.6 has no compiler stances")

    def body(x):
        for _ in range(3):
            x = torch.sin(x) * 2 + 1
        return x.sum()

    compiled = torch.compile(body, backend="eager")
    x = torch.randn(64)
    compiled(x)
    assert _compiled_regions(torch, lambda: compiled(x)) == 1
    counts = measure_counts(lambda: compiled(x))
    assert counts["aten_ops"] == 10  # the eager program's ops: 3 x (sin, mul, add) + sum
    assert _compiled_regions(torch, lambda: compiled(x)) == 1, "counting left it eager"


def test_counting_with_torch_loaded_does_not_import_dynamo():
    # The stance that keeps compiled frames compiled imports Dynamo when it is first asked
    # for: inside a pytester run that import was undone afterwards, and the next one broke
    # torch for the whole session (CI: ~300 tests failed after the first counted candidate).
    pytest.importorskip("torch")
    code = (
        "import sys, torch\n"
        "from perfsuite._counts import measure_counts\n"
        "c = measure_counts(lambda: sum(range(10)))\n"
        "print('torch._dynamo' in sys.modules, sorted(c))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split(" ", 1)
    assert out[0] == "False", f"counting imported torch._dynamo: {out}"
    assert "torch_compiles" not in out[1]  # both readings alike: no key appears in the second


def test_assert_counts_no_more():
    few, many = measure_counts(lambda: _calls(3)), measure_counts(lambda: _calls(4))
    assert compare_counts(few, many, a="few", b="many")["python_calls"] == (9, 11)
    with pytest.raises(PerfFailure, match=r"python_calls: many 11 > few 9 \(\+2\)"):
        compare_counts(many, few, a="many", b="few")
    with pytest.raises(PerfUsageError, match=r"`keys` \['flops'\] were not measured"):
        compare_counts(few, many, a="few", b="many", keys=["flops"])


def test_counts_round_trip_through_json():
    c = measure_counts(lambda: _calls(2))
    back = Counts.from_json(json.loads(json.dumps(c.to_json())))
    assert dict(back) == dict(c)
    assert list(back.values()) == list(dict(c).values())  # a Mapping: values() works
    assert back.unstable == {}


# --------------------------------------------------------------------------- the gate


def _doc(counts: dict[str, dict], python="3.11.7", unstable=()) -> dict:
    return {
        "machine": {"python": python, "versions": {"jax": "0.1"}, "xla_flags": ""},
        "measurements": [
            {
                "kind": "measure",
                "id": f"t::{name}",
                "test": "t",
                "name": name,
                "candidate": {
                    "samples_s": [1e-3, 1e-3],
                    "counts": {"values": v, "unstable": {k: [1, 2] for k in unstable}},
                },
            }
            for name, v in counts.items()
        ],
    }


def _session(current: dict, sessions: list[dict], fail=True, strict=False):
    saved = [
        _baseline.SavedSession.of(Path(f"{i + 1:04d}_b.json"), d, "median")
        for i, d in enumerate(sessions)
    ]
    return SimpleNamespace(
        baseline_sessions=saved,
        document=current,
        perf_config=SimpleNamespace(
            compare="b",
            fail=FailExpr("median", 10.0) if fail else None,
            fail_inconclusive=False,
            fail_counts_toolchain=strict,
        ),
        errors=[],
        measurements=[],
    )


def test_one_more_call_is_a_regression_naming_the_counter_both_values_and_the_delta():
    s = _session(_doc({"a": {"python_calls": 301}}), [_doc({"a": {"python_calls": 300}})])
    _baseline.apply(s)
    assert s.errors == [
        "COUNT REGRESSION t::a::counts: python_calls 301 vs baseline 300 (+1, exact). "
        "Rule: any increase of a deterministic count."
    ]
    assert s.document["measurements"][0]["count_baselines"][0]["delta"] == 1


def test_a_decrease_is_reported_and_equal_counts_are_the_same():
    s = _session(
        _doc({"a": {"python_calls": 299, "compilations": 0}}),
        [_doc({"a": {"python_calls": 300, "compilations": 0}})],
    )
    _baseline.apply(s)
    result = s.document["baseline"]["counts"]
    assert s.errors == []
    assert result["same"] == 1
    assert [e["verdict"] for e in result["entries"]] == ["improvement"]
    lines = [t for t, _ in _count_gate.summary_lines(s.document, s.perf_config)]
    assert "1 the same, 1 improvement" in lines[0]
    assert "(-1, exact)" in lines[1]


def test_a_toolchain_change_labels_count_changes_and_fails_only_when_asked():
    current = _doc({"a": {"python_calls": 310}}, python="3.12.1")
    s = _session(current, [_doc({"a": {"python_calls": 300}})])
    _baseline.apply(s)
    entry = s.document["baseline"]["counts"]["entries"][0]
    assert s.errors == []
    assert entry["verdict"] == "toolchain changed"
    assert entry["toolchain"] == ["python: '3.11.7' -> '3.12.1'"]
    strict = _session(_doc({"a": {"python_calls": 310}}, python="3.12.1"),
                      [_doc({"a": {"python_calls": 300}})], strict=True)  # fmt: skip
    _baseline.apply(strict)
    assert len(strict.errors) == 1
    assert "toolchain changed: python" in strict.errors[0]


def test_non_deterministic_counts_are_never_gated():
    s = _session(
        _doc({"a": {"python_calls": 999}}, unstable=["python_calls"]),
        [_doc({"a": {"python_calls": 300}})],
    )
    _baseline.apply(s)
    assert s.errors == []
    assert s.document["baseline"]["counts"]["ungated"]
    # Baseline sessions that disagree with each other: not gated either.
    s = _session(
        _doc({"a": {"python_calls": 999}}),
        [_doc({"a": {"python_calls": 300}}), _doc({"a": {"python_calls": 301}})],
    )
    _baseline.apply(s)
    assert s.errors == []
    assert "baseline sessions differ" in s.document["baseline"]["counts"]["ungated"][0]


def test_without_perf_fail_a_count_regression_is_reported_not_failed():
    s = _session(
        _doc({"a": {"python_calls": 301}}), [_doc({"a": {"python_calls": 300}})], fail=False
    )
    _baseline.apply(s)
    assert s.errors == []
    lines = [t for t, _ in _count_gate.summary_lines(s.document, s.perf_config)]
    assert any("COUNT REGRESSION" in t and "not failing" in t for t in lines)


def test_ab_counts_are_judged_exactly():
    base = [_count_gate.count_values(_doc({"a": {"python_calls": 300}}))] * 3
    same = _count_gate.ab_verdicts(base, base, base_toolchain={}, head_toolchain={}, strict=False)
    assert not same["failed"]
    assert same["same"] == 1
    head = [_count_gate.count_values(_doc({"a": {"python_calls": 301}}))] * 3
    worse = _count_gate.ab_verdicts(base, head, base_toolchain={}, head_toolchain={}, strict=False)
    assert worse["failed"]
    assert worse["entries"][0]["delta"] == 1


# --------------------------------------------------------------------------- through pytest


COUNTED = """
import pytest

def one():
    return 1

def work(n):
    return lambda: sum(one() for _ in range(n))

@pytest.mark.perf
def test_counted(perf):
    # work(n): the lambda, the generator (started, resumed n times), n `one`s: 2n + 2.
    c = perf.counts(work(10), name="ten", at_most={"python_calls": 22})
    assert c["python_calls"] == 22
    cmp = perf.compare(small=work(5), large=work(50))
    assert cmp.counts("small")["python_calls"] == 12
    cmp.assert_counts_no_more("small", than="large")
    m = perf.measure(work(20), name="alone")
    assert m.counts["python_calls"] == 42
    st = perf.steps(lambda s, b: s + one(), 0, [1], n=4, name="stepper")
    # The step, `one`, and the counter's own wrapper that threads the state through.
    assert st.counts["python_calls"] == 3
    assert st.counted_steps >= 4  # two host readings, two device-work readings

@pytest.mark.perf
def test_too_many(perf):
    perf.counts(work(10), name="ten", at_most={"python_calls": 21})

@pytest.mark.perf
def test_more_than(perf):
    cmp = perf.compare(small=work(5), large=work(50))
    cmp.assert_counts_no_more("large", than="small")
"""


def test_counts_through_pytest(run_perf, pytester):
    pytester.makepyfile(test_inner=COUNTED)
    result, doc = run_perf()
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*python_calls 22 > at most 21 (+1)*",
            "*python_calls: large 102 > small 12 (+90)*",
            "*counts*py calls 12*",
        ]
    )
    kinds = [(m["kind"], m["name"]) for m in doc["measurements"]][:4]
    assert kinds == [
        ("counts", "ten"),
        ("compare", "small+large"),
        ("measure", "alone"),
        ("steps", "stepper"),
    ]
    cand = doc["measurements"][1]["comparison"]["candidates"][0]
    assert cand["counts"]["values"]["python_calls"] == 12


GATED = """
import os
import pytest

def one():
    return 1

@pytest.mark.perf
def test_loop(perf):
    n = int(os.environ["CALLS"])
    perf.measure(lambda: sum(one() for _ in range(n)), name="loop")
"""


def test_compare_gates_one_extra_call(run_perf, pytester, monkeypatch):
    pytester.makepyfile(test_inner=GATED)
    monkeypatch.setenv("CALLS", "100")
    result, _ = run_perf("--perf-save=base")
    result.assert_outcomes(passed=1)
    result, _ = run_perf("--perf-compare=base", "--perf-fail=900%")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*counts vs baseline: * the same"])
    monkeypatch.setenv("CALLS", "101")
    result, doc = run_perf("--perf-compare=base", "--perf-fail=900%")
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            "*COUNT REGRESSION test_inner.py::test_loop::loop::counts: python_calls 204 vs baseline 202 (+2, exact)*"
        ]
    )
    result, _ = run_perf("--perf-compare=base", "--perf-fail=900%", "--perf-fail-counts-toolchain")
    assert result.ret != 0  # same toolchain: the option changes nothing here
    result = pytester.runpytest("--perf-fail-counts-toolchain")
    result.stderr.fnmatch_lines(["*--perf-fail-counts-toolchain only make sense with --perf*"])


def test_perfsuite_ab_fails_on_one_more_call_even_when_the_times_agree(tmp_path):
    from _ab_repo import make_repo

    from perfsuite import ab as _ab

    repo = make_repo(tmp_path)

    def runner(cfg, side, index, tree, out):
        calls = 301 if side == "HEAD" else 300
        counts = {"t.py::test::x::counts": {"values": {"python_calls": calls}, "unstable": []}}
        return _ab.RunResult(
            side, index, 0.01, 0, {"t.py::test::x": ("median", 1e-3)}, counts=counts
        )

    cfg = _ab.AbConfig(
        base="HEAD~1", head="HEAD", pytest_args=(), fail=FailExpr("median", 0.05), repo=repo,
        min_runs=8, max_runs=8,
    )  # fmt: skip
    doc = _ab.run_ab(cfg, runner=runner)
    assert doc["exit_code"] == 1
    (entry,) = doc["counts"]["entries"]
    assert (entry["counter"], entry["baseline"], entry["current"], entry["delta"]) == (
        "python_calls", 300, 301, 1,
    )  # fmt: skip


def test_counting_calls_run_with_the_collector_off_and_leave_it_on():
    # JAX registers a `gc.callbacks` hook: a collection inside a reading would add Python
    # calls wherever the allocation counters happened to trigger it.
    import gc

    seen = []
    measure_counts(lambda: seen.append(gc.isenabled()))
    assert seen
    assert not any(seen)
    assert gc.isenabled()


def test_ab_report_lists_count_changes():
    from perfsuite.ab._report import _count_lines

    base = [_count_gate.count_values(_doc({"a": {"python_calls": 300}}))]
    head = [_count_gate.count_values(_doc({"a": {"python_calls": 302}}))]
    doc = {
        "counts": _count_gate.ab_verdicts(
            base, head, base_toolchain={}, head_toolchain={}, strict=False
        )
    }
    assert _count_lines(doc) == [
        "counts: 0 the same, 1 changed",
        "COUNT REGRESSION t::a::counts: python_calls 302 vs baseline 300 (+2, exact)",
    ]


def test_hlo_stats_count_the_entry_computation_and_fusions():
    from perfsuite._counts_jax import _hlo_stats

    text = """%fc (x: f32[2]) -> f32[2] {
  %x = f32[2]{0} parameter(0)
  ROOT %d = bf16[2,2]{1,0} dot(%x, %x), lhs_contracting_dims={1}
}

ENTRY %main (p: f32[2]) -> (f32[2], s32[]) {
  %p = f32[2]{0} parameter(0)
  %c = s32[] constant(1)
  %f = f32[2]{0} fusion(%p), kind=kLoop, calls=%fc, metadata={op_name="jit(f)/x"}
  ROOT %t = (f32[2]{0}, s32[]) tuple(%f, %c)
}
"""
    instructions, fusions, dtypes, _, _ = _hlo_stats(text)
    assert (instructions, fusions) == (4, 1)  # the tuple-shaped ROOT counts too
    assert dtypes == {"f32": 1}  # the inputs' dtype (`%x`'s), not the output's
    gemm = (
        "  %g = (bf16[8,8]{1,0}, s8[64]{0}) custom-call(bf16[8,8]{1,0} %a, bf16[8,8]{1,0} %b), "
        'custom_call_target="__cublas$gemm"'
    )
    assert _hlo_stats(gemm)[2] == {"bf16": 1}


# A cuBLAS gemm as XLA:GPU prints it (the shape of the line the H200 run printed): XLA's
# cost model reads ~0 FLOPs for it (jax-ml/jax#22249), perfsuite's own count must not.
_GEMM_LINE = (
    "  %custom-call.1 = (bf16[64,32]{1,0}, s8[4194304]{0}) custom-call(bf16[64,128]{1,0} %p.1, "
    'bf16[128,32]{1,0} %p.2), custom_call_target="__cublas$gemm", '
    'backend_config={"operation_queue_id":"0","gemm_backend_config":{"alpha_real":1,'
    '"beta":0,"dot_dimension_numbers":{"lhs_contracting_dimensions":["1"],'
    '"rhs_contracting_dimensions":["0"],"lhs_batch_dimensions":[],"rhs_batch_dimensions":[]},'
    '"precision_config":{"operand_precision":["DEFAULT","DEFAULT"]}}}'
)


# The line XLA:GPU (jax 0.11.2) compiled for an 8192^3 bf16 matmul on the H200, as printed by
# scripts/h200_roofline.py: operands by name only, their shapes in their definitions.
_H200_GEMM = (
    "ENTRY %main {\n"
    "  %a.1 = bf16[8192,8192]{1,0} parameter(0)\n"
    "  %b.1 = bf16[8192,8192]{1,0} parameter(1)\n"
    "  "
    + '%custom-call.1 = (bf16[8192,8192]{1,0}, s8[33554432]{0}) custom-call(%a.1, %b.1), custom_call_target="__cublas$lt$matmul", metadata={op_name="jit(<lambda>)/dot_general" scheduling_name="custom-call.1" stack_frame_id=5}, backend_config={"device_type":"DEVICE_TYPE_INVALID","force_earliest_schedule":false,"gemm_backend_config":{"alpha_imag":0,"alpha_real":1,"autotune_workspace_size":"33554432","beta":0,"damax_output":false,"dot_dimension_numbers":{"lhs_batch_dimensions":[],"lhs_contracting_dimensions":["1"],"rhs_batch_dimensions":[],"rhs_contracting_dimensions":["0"]},"epilogue":"DEFAULT","grad_x":false,"grad_y":false,"lhs_stride":"67108864","precision_config":{"algorithm":"ALG_UNSET","operand_precision":["DEFAULT","DEFAULT"]},"rhs_stride":"67108864","scale_mode":0,"selected_algorithm":"1"},"operation_queue_id":"0","reification_cost":[]}'
    + "\n"
    "}\n"
)


def test_the_h200_gemm_counts_its_flops_and_dtype():
    from perfsuite._counts_jax import _hlo_stats

    _, _, dtypes, flops, tf32 = _hlo_stats(_H200_GEMM)
    assert (dict(dtypes), flops, tf32) == ({"bf16": 1}, 2 * 8192**3, False)
    f32 = _H200_GEMM.replace("bf16[8192", "f32[8192")
    assert _hlo_stats(f32)[2:] == ({"f32": 1}, 2 * 8192**3, True)  # default precision: TF32


def test_matmul_flops_are_read_off_dots_and_library_gemms():
    from perfsuite._counts_jax import _hlo_stats

    dot = (
        "  %dot.3 = f32[4,64,32]{2,1,0} dot(f32[4,64,128]{2,1,0} %a, f32[4,128,32]{2,1,0} %b), "
        "lhs_batch_dims={0}, lhs_contracting_dims={2}, rhs_batch_dims={0}, "
        "rhs_contracting_dims={1}"
    )
    assert _hlo_stats(dot)[3] == 2 * 4 * 64 * 32 * 128
    assert _hlo_stats(dot)[4] is True  # f32 at default precision: may run on TF32
    highest = dot + ", operand_precision={highest,highest}"
    assert _hlo_stats(highest)[3:] == (2 * 4 * 64 * 32 * 128, False)
    assert _hlo_stats(_GEMM_LINE)[3] == 2 * 64 * 32 * 128
    assert _hlo_stats(_GEMM_LINE)[4] is False  # bf16
    # A custom call that is not a gemm (a Triton kernel, a sort) counts nothing.
    other = '  %c = f32[8]{0} custom-call(f32[8]{0} %x), custom_call_target="__triton"'
    assert _hlo_stats(other)[3] == 0


def test_matmul_flops_of_a_jitted_matmul_on_the_cpu():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    f = jax.jit(lambda a, b: a @ b)
    a, b = jnp.ones((64, 128)), jnp.ones((128, 32))
    f(a, b).block_until_ready()
    counts = measure_counts(lambda: f(a, b))
    assert counts["matmul_flops"] == 2 * 64 * 32 * 128
    assert counts.deterministic("matmul_flops")
