"""The GitHub workflows: schema-valid, shell-valid, and doing what the issue asks of them.

Validation is offline: `check-jsonschema --builtin-schema vendor.github-workflows` ships the
schema (actionlint cannot be installed from PyPI without downloading a binary).
"""

import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml


ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
EXPECTED = {"ci.yml", "perf-pr.yml", "asv-gpu.yml", "asv-tpu.yml"}
_EXPR = re.compile(r"\$\{\{.*?\}\}")


def _check_jsonschema() -> str:
    exe = Path(sys.executable).with_name("check-jsonschema")
    if exe.exists():
        return str(exe)
    found = shutil.which("check-jsonschema")
    if found is None:
        pytest.fail("check-jsonschema is not installed (it is in the `dev` extra)")
    return found


def _load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _on(workflow: dict) -> dict:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    return {on: None} if isinstance(on, str) else on


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _step(workflow: dict, name_part: str) -> dict:
    matches = [s for s in _steps(workflow) if name_part in s.get("name", "")]
    assert len(matches) == 1, f"expected one step named like {name_part!r}, got {matches}"
    return matches[0]


def _all_run_text(workflow: dict) -> str:
    return "\n".join(s.get("run", "") for s in _steps(workflow))


def test_expected_workflows_exist():
    assert EXPECTED <= {p.name for p in WORKFLOWS.glob("*.yml")}


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.y*ml")), ids=lambda p: p.name)
def test_workflow_matches_github_schema(path):
    proc = subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    # The validator must actually validate: a job without `runs-on` and a step with both
    # `uses` and `run` are schema errors.
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "name: bad\non: push\njobs:\n  j:\n    steps:\n      - uses: actions/checkout@v4\n"
        "        run: echo hi\n"
    )
    proc = subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.y*ml")), ids=lambda p: p.name)
def test_run_steps_are_valid_bash(path, tmp_path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed, so the `run:` scripts cannot be parsed")
    for i, step in enumerate(_steps(yaml.safe_load(path.read_text()))):
        if "run" not in step:
            continue
        script = tmp_path / f"step{i}.sh"
        script.write_text(_EXPR.sub("EXPR", step["run"]))
        proc = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{path.name}: step {step.get('name', i)!r}: {proc.stderr}"


def test_ci_lints_and_tests_every_supported_python():
    wf = _load("ci.yml")
    on = _on(wf)
    assert "pull_request" in on
    assert "push" in on
    assert "make lint" in wf["jobs"]["lint"]["steps"][-1]["run"]
    test = wf["jobs"]["test"]
    assert test["needs"] == "lint"
    versions = test["strategy"]["matrix"]["python-version"]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    lowest = requires.removeprefix(">=")
    assert versions[0] == lowest, f"requires-python is {requires}: the lowest must be tested"
    assert {lowest, "3.12", "3.13"} <= set(versions)
    assert any(s.get("run", "").startswith("make test") for s in test["steps"])


def test_perf_pr_gates_on_ab_against_the_merge_base():
    wf = _load("perf-pr.yml")
    assert "pull_request" in _on(wf)
    (job,) = wf["jobs"].values()
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0, "the merge base needs full history"
    runs = _all_run_text(wf)
    assert "make perf" in runs
    assert "git merge-base" in runs
    assert re.search(r"perfsuite ab \S+ HEAD .*--markdown", runs)
    assert '--jobs "$(nproc)"' in runs  # CPU perf tests: one pair per CPU at once
    assert "GITHUB_STEP_SUMMARY" in runs


@pytest.mark.parametrize(
    ("ab_exit", "step_exit", "annotation"),
    [(0, 0, None), (1, 1, "::error"), (3, 0, "::warning"), (2, 2, "::error")],
)
def test_perf_pr_verdict_handling(tmp_path, ab_exit, step_exit, annotation):
    """Run the A/B step's script against a stand-in `perfsuite` with each exit code."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed, so the step script cannot be run")
    step = _step(_load("perf-pr.yml"), "perfsuite ab")
    fake = tmp_path / ".venv" / "bin" / "perfsuite"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'while [ $# -gt 0 ]; do if [ "$1" = --markdown ]; then shift; '
        f'echo "## verdict {ab_exit}" > "$1"; fi; shift; done\nexit {ab_exit}\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    env = {
        **os.environ,
        "BASE": "0" * 40,
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output),
    }
    proc = subprocess.run(
        [bash, "-e", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == step_exit, proc.stdout + proc.stderr
    assert f"## verdict {ab_exit}" in summary.read_text()
    assert f"code={ab_exit}" in output.read_text()
    if annotation:
        assert annotation in proc.stdout
    # The check run maps "inconclusive" to GitHub's neutral conclusion.
    script = _step(_load("perf-pr.yml"), "check run")["with"]["script"]
    assert '"3": "neutral"' in script


@pytest.mark.parametrize(("name", "label"), [("asv-gpu.yml", "gpu"), ("asv-tpu.yml", "tpu")])
def test_asv_history_workflows(name, label):
    wf = _load(name)
    on = _on(wf)
    assert on["push"]["branches"] == ["main"]
    assert on["schedule"], "nightly runs"
    bench = wf["jobs"]["benchmark"]
    assert "self-hosted" in bench["runs-on"]
    assert label in bench["runs-on"]
    runs = _all_run_text(wf)
    assert "asv run" in runs
    assert "--launch-method=spawn" in runs
    assert "--skip-existing-commits" in runs
    assert "asv publish" in runs
    accel = "jax[cuda12]" if label == "gpu" else "jax[tpu]"
    assert accel in wf["env"]["ASV_REQS"]
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "benchmark"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["steps"][-1]["uses"].startswith("actions/deploy-pages@")
    assert any(
        s.get("uses", "").startswith("actions/upload-pages-artifact@") for s in bench["steps"]
    )


@pytest.mark.parametrize("name", ["asv-gpu.yml", "asv-tpu.yml"])
def test_asv_runner_config_step_produces_a_valid_config(name, tmp_path):
    """The step that derives the runner's asv config works on the real asv.conf.json."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed, so the step script cannot be run")
    from asv import util

    wf = _load(name)
    step = _step(wf, "asv config for this runner")
    shutil.copy(ROOT / "asv.conf.json", tmp_path / "asv.conf.json")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    # A wrapper, not a symlink: a venv's interpreter finds its site-packages via its own path.
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    env = {
        **os.environ,
        "ASV_REQS": wf["env"]["ASV_REQS"],
        # What GitHub sets in every job: the dashboard links to the repository it came from.
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "octo-org/perfsuite",
    }
    proc = subprocess.run(
        [bash, "-e", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    conf = util.load_json(str(tmp_path / "asv.ci.conf.json"), js_comments=True)
    base = util.load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    assert conf["matrix"] == {"req": yaml.safe_load(wf["env"]["ASV_REQS"])}
    assert conf["launch_method"] == "spawn"
    assert conf["project_url"] == "https://github.com/octo-org/perfsuite"
    assert conf["show_commit_url"] == "https://github.com/octo-org/perfsuite/commit/"
    assert conf["benchmark_dir"] == base["benchmark_dir"] == "benchmarks"
    assert conf["install_command"] == base["install_command"]
