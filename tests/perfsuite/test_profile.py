"""Issue 16: profiles of both sides of a failed comparison, their diff, and where they go."""

from __future__ import annotations

import importlib.util
import json
import marshal
import pstats
import re
from pathlib import Path

import pytest

from perfsuite import _profile
from perfsuite._results import iter_profiles, validate_document
from perfsuite._values import ProfileMode, parse_profile


# The slow side calls `deliberately_slow`, a pure-Python loop whose self time (~50x a
# `fast` call) dwarfs every other function's change: the diff must name it first.
SLOW_HELPER_TEST = """
import pytest


def deliberately_slow():
    total = 0
    for i in range(3000):
        total += i * i
    return total


def cheap():
    return sum(range(50))


@pytest.mark.perf{marker}
def test_claim(perf):
    cmp = perf.compare(slow=lambda: (cheap(), deliberately_slow()), fast=cheap)
    cmp.assert_no_slower("slow", than="fast", tolerance=0.05)
"""


def _profiles(doc):
    return list(iter_profiles(doc))


def test_a_failed_claim_names_the_slow_helper_first(pytester, run_perf) -> None:
    pytester.makepyfile(test_slow=SLOW_HELPER_TEST.format(marker=""))
    result, doc = run_perf()
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    # The message ends with the top of the host diff, the helper first, and the folder.
    lines = out.splitlines()
    top = next(i for i, ln in enumerate(lines) if "top of the host diff" in ln)
    assert "deliberately_slow (test_slow.py:" in lines[top + 1], lines[top : top + 5]
    assert "[only in slow]" in lines[top + 1]
    assert "profiles/test_slow.py_test_claim" in out
    # The results record the paths, through the one reader, and they exist.
    validate_document(doc)
    (p,) = _profiles(doc)
    assert (p.a, p.b) == ("slow", "fast")
    assert re.search(r"deliberately_slow \(test_slow.py:\d+\) \[only in slow\]$", p.top["host"][0])
    root = pytester.path
    diff = root / p.diffs["host"]
    assert diff.is_file()
    assert "ranked by change in calls" in diff.read_text()
    for f in p.artifacts["host"]:
        stats = pstats.Stats(str(root / f))  # the format pstats (and snakeviz) opens
        assert stats.total_calls > 0
    assert not list((root / p.folder).glob(".*tmp*")), "temporary files left behind"


def test_profile_off_and_all(pytester, run_perf) -> None:
    pytester.makepyfile(test_slow=SLOW_HELPER_TEST.format(marker='(profile="off")'))
    result, doc = run_perf()
    result.assert_outcomes(failed=1)
    assert "top of the host diff" not in result.stdout.str()
    assert _profiles(doc) == []
    assert not (pytester.path / ".perf" / "profiles").exists()
    # `all` profiles a claim that passes too (here: the reverse claim holds).
    pytester.makepyfile(
        test_slow=SLOW_HELPER_TEST.format(marker="").replace(
            'assert_no_slower("slow", than="fast", tolerance=0.05)',
            'assert_speedup("fast", over="slow", at_least=2)',
        )
    )
    result, doc = run_perf("--perf-profile=all")
    result.assert_outcomes(passed=1)
    (p,) = _profiles(doc)
    assert (p.a, p.b) == ("fast", "slow")
    assert p.top["host"][0].endswith("[only in slow]")


def test_bad_profile_values_name_the_rule(pytester) -> None:
    result = pytester.runpytest("--perf", "--perf-profile=sometimes")
    result.stderr.fnmatch_lines(["*Could not parse value: 'sometimes'*failed*all*off*"])
    pytester.makepyfile(
        'import pytest\n@pytest.mark.perf(profile="maybe")\ndef test_x(perf):\n    pass\n'
    )
    result = pytester.runpytest("--perf", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*`profile` must be one of *'failed', 'all', 'off'*'maybe'*"])
    assert parse_profile("all") == ProfileMode.ALL


def test_markdown_report_links_the_profiles(pytester, run_perf) -> None:
    from perfsuite._report import markdown_report, text_report

    pytester.makepyfile(test_slow=SLOW_HELPER_TEST.format(marker=""))
    _, doc = run_perf()
    md = markdown_report(doc, relative_to=None)
    assert "#### Profiles: `test_slow.py::test_claim::slow+fast` (slow against fast)" in md
    assert "deliberately_slow" in md.split("#### Profiles")[1].splitlines()[3]
    assert "(.perf/profiles/test_slow.py_test_claim/diff-slow-vs-fast.host.txt)" in md
    # and the plain-text report lists them too, with the top of the diff
    text = text_report(doc)
    tail = text.split("profiles: test_slow.py::test_claim::slow+fast (slow against fast)")[1]
    assert "diff-slow-vs-fast.host.txt" in tail.splitlines()[1]
    assert "deliberately_slow" in tail.splitlines()[2]


# --------------------------------------------------------------------------- units


def test_diff_ranks_by_self_time_then_calls_and_marks_one_side() -> None:
    a = {"f": (4e-3, 1.0), "g": (1e-3, 2.0), "only_a": (5e-4, 1.0)}
    b = {"f": (1e-3, 1.0), "g": (1e-3, 1.0), "only_b": (2e-3, 1.0)}
    rows = _profile._join(a, b)
    names = [r.name for r in rows]
    assert names == ["f", "only_b", "only_a", "g"]  # +3 ms, -2 ms, +0.5 ms, 0 ms (+1 call)
    lines = _profile.diff_lines(rows, "a", "b", what="self")
    assert lines[1] == "-2000.0 us/call self, -1 calls/call: only_b [only in b]"
    assert lines[3] == "+0.0 us/call self, +1 calls/call: g"


def test_host_table_is_per_call(tmp_path: Path) -> None:
    def helper():
        return sum(range(100))

    prof = _profile._host_profile(lambda: (helper(), helper()), lambda out: None, 10)
    table = _profile.host_table(prof.stats, 10)
    (key,) = [k for k in table if k.startswith("helper ")]
    assert table[key][1] == 2.0  # two calls per call, whatever the number of calls
    assert not any(k.startswith("_run_calls") for k in table)
    path = tmp_path / "x.pstats"
    path.write_bytes(marshal.dumps(prof.stats))
    assert pstats.Stats(str(path)).total_calls >= 20


# --------------------------------------------------------------------------- torch and JAX

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs PyTorch (the `torch` extra)"
)
needs_jax = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="needs JAX (the `jax` extra)"
)


def _fake_candidates(**fns):
    from perfsuite.instruments import select_instrument

    class C:
        def __init__(self, fn):
            self.fn = fn
            self.instrument = select_instrument(fn())
            self.per_call_s = 1e-3

    return {name: C(fn) for name, fn in fns.items()}


@needs_torch
def test_torch_ops_diff_names_the_extra_op(tmp_path: Path) -> None:
    import torch

    x = torch.randn(20_000)
    # One extra aten op per call on the `extra` side: a sort of 20k floats (~0.5 ms), far
    # above the profiler's per-op noise on the two shared ops.
    cands = _fake_candidates(
        extra=lambda: torch.sort(x * 2.0).values,
        plain=lambda: x * 2.0,
    )
    result = _profile.profile_pair(cands, "extra", "plain", tmp_path, calls=10)
    assert not result.errors
    top = result.top["torch"]
    assert re.search(r": aten::sort \[only in extra\]$", top[0]), top
    for trace in tmp_path.glob("*.torch.json"):
        assert json.loads(trace.read_text())["traceEvents"]
    ops = (tmp_path / "extra.torch-ops.txt").read_text()
    assert "aten::sort" in ops
    assert "aten::mul" in ops
    text = (tmp_path / "diff-extra-vs-plain.torch.txt").read_text()
    mul = next(ln for ln in text.splitlines() if ln.endswith(": aten::mul"))
    assert "+0 calls/call" in mul  # the shared op, once per call on both sides


@needs_jax
def test_jax_traces_exist_and_load(tmp_path: Path) -> None:
    import gzip

    import jax
    import jax.numpy as jnp

    x = jnp.ones((64, 64))
    f = jax.jit(lambda x: jnp.sin(x) @ x)
    g = jax.jit(lambda x: jnp.sin(x) @ x @ x)
    cands = _fake_candidates(g=lambda: g(x), f=lambda: f(x))
    result = _profile.profile_pair(cands, "g", "f", tmp_path, calls=5)
    assert not result.errors
    for name in ("g", "f"):
        folder = tmp_path / f"{name}.jax"
        (pb,) = folder.glob("*.xplane.pb")
        data = jax.profiler.ProfileData.from_file(str(pb))
        assert any(p.name.startswith("/host:") for p in data.planes)
        (perfetto,) = folder.glob("perfetto_trace.json.gz")
        assert json.loads(gzip.decompress(perfetto.read_bytes()))
    # Read back, the op table and its diff exist (on CPU the XLA client's thread's ops).
    assert result.diffs.get("jax"), result.artifacts
    table = _profile.jax_op_table(next((tmp_path / "g.jax").glob("*.xplane.pb")), 5)
    assert table
    assert all(count > 0 for _, count, _ in table.values())


BASELINE_TEST = """
import pytest


def deliberately_slow():
    total = 0
    for i in range({n}):
        total += i * i
    return total


@pytest.mark.perf
def test_loop(perf):
    perf.measure(deliberately_slow, name="loop")
"""


def test_a_regression_against_a_baseline_is_profiled(pytester, run_perf) -> None:
    pytester.makepyfile(test_base=BASELINE_TEST.format(n=200))
    result, _ = run_perf("--perf-save=main")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / ".perf" / "profiles").exists()  # nothing slower: no profile
    # 20x the work: far beyond the one-session band (x1.8) and the 5% limit.
    pytester.makepyfile(test_base=BASELINE_TEST.format(n=4000))
    result, doc = run_perf("--perf-compare=main", "--perf-fail=5%")
    assert result.ret == 1  # the gate fails the session at its end
    out = result.stdout.str()
    assert "profiles of test_base.py::test_loop::loop (regression against baseline main" in out
    (p,) = _profiles(doc)
    assert (p.a, p.b) == ("loop", None)
    assert "deliberately_slow (test_base.py:" in p.top["host"][0]
    assert (pytester.path / p.diffs["host"]).is_file()


def test_the_verdict_hook_ends_an_inconclusive_message_too() -> None:
    from perfsuite import PerfInconclusive, Settings, compare

    seen = []

    def hook(verdict):
        seen.append(verdict["verdict"])
        return "top of the host diff (x):\n  line"

    def work():
        return sum(range(200))

    # Two rounds give no 99% interval at all ((0, inf): too few rounds for the level), and
    # a budget of 0.01 s is spent by them, so no round is added: inconclusive, whatever the
    # timings. The hook's lines end the message.
    settings = Settings.quick(budget_s=0.01, min_rounds=2)
    cmp = compare(settings=settings, on_verdict=hook, a=work, b=work)
    with pytest.raises(
        PerfInconclusive, match=r"reduce noise\.\ntop of the host diff \(x\):\n  line$"
    ):
        cmp.assert_speedup("a", over="b", at_least=1.0)
    assert seen == ["inconclusive"]
