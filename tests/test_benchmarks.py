"""The asv suite: it passes `asv check`, and every benchmark runs (setup + one call).

Each benchmark class is run in-process on its cheapest parameter combinations; GPU-only
combinations must skip the asv way (`NotImplementedError` from `setup`) on this machine.
"""

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import bench_spd, bench_train_step, bench_transforms


ROOT = Path(__file__).resolve().parents[1]
MODULES = (bench_transforms, bench_train_step, bench_spd)
PREFIXES = ("time_", "timeraw_", "mem_", "peakmem_", "track_")

# class -> the parameter combinations run here (tiny, CPU).
TINY = {
    bench_transforms.ApplyTransforms: [(24, m) for m in bench_transforms.METHODS],
    bench_transforms.TransformSpeedup: [(24, "tree_at")],
    bench_train_step.TrainStep: [("cached", "tiny-2L")],
    bench_train_step.TrainLoop: [("jit", "tiny-2L")],
    bench_spd.SPDStep: [("tms_5-2", "baseline", "cpu"), ("resid_mlp1", "exact", "cpu")],
    bench_spd.SPDSteps: [("tms_5-2", "persistent_hooks", "cpu")],
}


def _benchmark_classes() -> list[type]:
    found = []
    for module in MODULES:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and not cls.__name__.startswith("_"):
                if any(name.startswith(PREFIXES) for name in dir(cls)):
                    found.append(cls)
    return found


def _methods(cls: type) -> list[str]:
    return sorted(name for name in dir(cls) if name.startswith(PREFIXES))


def _run(cls: type, params: tuple) -> dict:
    """What asv does for one parameter combination, once: setup, each benchmark, teardown."""
    bench = cls()
    bench.setup(*params)
    try:
        return {name: getattr(bench, name)(*params) for name in _methods(cls)}
    finally:
        if hasattr(bench, "teardown"):
            bench.teardown(*params)


def test_every_benchmark_class_is_exercised():
    assert set(_benchmark_classes()) == set(TINY)


@pytest.mark.parametrize("cls", list(TINY), ids=lambda c: c.__name__)
def test_params_are_well_formed(cls):
    assert len(cls.params) == len(cls.param_names)
    assert all(len(set(map(repr, values))) == len(values) for values in cls.params)
    assert isinstance(cls.version, str), "an explicit version keeps history across edits"
    for params in TINY[cls]:
        assert len(params) == len(cls.params)
        for value, allowed in zip(params, cls.params):
            assert value in allowed
    for name in _methods(cls):
        if name.startswith("track_"):
            assert getattr(getattr(cls, name), "unit", getattr(cls, "unit", None))


@pytest.mark.parametrize(
    ("cls", "params"),
    [(cls, p) for cls, combos in TINY.items() for p in combos],
    ids=lambda x: x.__name__ if isinstance(x, type) else "-".join(map(str, x)),
)
def test_benchmark_runs(cls, params):
    results = _run(cls, params)
    for name, value in results.items():
        if name.startswith("track_"):
            assert isinstance(value, float), f"{name} returned {value!r}"
            assert value > 0


def _jax_on_cpu() -> bool:
    import jax

    return jax.default_backend() == "cpu"


def _no_cuda() -> bool:
    import torch

    return not torch.cuda.is_available()


@pytest.mark.parametrize(
    ("cls", "params", "cpu_only_machine"),
    [
        (bench_train_step.TrainStep, ("cached", "base-12L"), _jax_on_cpu),
        (bench_train_step.TrainLoop, ("filter_jit", "base-12L"), _jax_on_cpu),
        (bench_spd.SPDStep, ("tms_5-2", "baseline", "cuda"), _no_cuda),
        (bench_spd.SPDSteps, ("resid_mlp1", "fastest", "cuda"), _no_cuda),
        (bench_spd.SPDStep, ("tms_5-2", "cuda_graphs", "cpu"), lambda: True),
    ],
    ids=["train-step-base", "train-loop-base", "spd-cuda", "spd-steps-cuda", "cuda-graphs-cpu"],
)
def test_accelerator_only_params_skip_in_setup(cls, params, cpu_only_machine):
    if not cpu_only_machine():
        pytest.skip("this machine has the accelerator: the combination runs instead")
    with pytest.raises(NotImplementedError, match="needs"):
        cls().setup(*params)


def test_asv_check(tmp_path):
    """`asv check --python=same`: asv imports the suite and validates every benchmark."""
    env = {**os.environ, "HOME": str(tmp_path)}  # no asv state outside tmp
    proc = subprocess.run(
        [sys.executable, "-m", "asv", "check", "--python=same"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
