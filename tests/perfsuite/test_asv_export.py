"""`perfsuite export-asv`: results that asv reads back and publishes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from perfsuite._asv_export import asv_name
from perfsuite.cli import main


# asv is imported at module level, not inside a test: importing it after an in-process
# pytester run breaks the next in-process run's plugin loading. It is an optional extra
# (`perfsuite[asv]`), absent e.g. from the GPU images the perf suite also runs on.
asv_results = pytest.importorskip(
    "asv.results", reason="asv is not installed (`pip install perfsuite[asv]`)"
)
Results, iter_results = asv_results.Results, asv_results.iter_results


INNER = """
import pytest


def work(n):
    return sum(range(n))


@pytest.mark.perf
def test_all(perf):
    perf.measure(lambda: work(1000), name="sum")
    perf.steps(lambda s, b: s + work(b), 0, [200], n=20, name="train")
    perf.record("speedup", 3.5, "x")
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def results(pytester: pytest.Pytester) -> Path:
    """A results document measured in a git checkout (asv history is keyed by commit)."""
    pytester.makepyfile(test_inner=INNER)
    _git(pytester.path, "init", "-q", "-b", "main")
    _git(pytester.path, "config", "user.email", "t@perfsuite.invalid")
    _git(pytester.path, "config", "user.name", "t")
    _git(pytester.path, "add", "test_inner.py")
    _git(pytester.path, "commit", "-qm", "one")
    out = pytester.path / "results.json"
    pytester.runpytest(
        "--perf", "--perf-quick", "-p", "no:cacheprovider", f"--perf-json={out}"
    ).assert_outcomes(passed=1)
    return out


def test_asv_names_are_one_branch_of_the_tree() -> None:
    assert (
        asv_name("tests/x/test_a.py::test_b[p-1]::name")
        == "perfsuite.tests_x_test_a.test_b[p-1].name"
    )


def test_export_is_read_back_by_asv(results: Path, pytester: pytest.Pytester, capsys) -> None:
    doc = json.loads(results.read_text())
    commit = doc["commit"]["id"]
    machine = doc["machine"]["id"]
    rdir = pytester.path / "asvres"
    assert main(["export-asv", str(results), "--results-dir", str(rdir)]) == 0
    out = capsys.readouterr().out
    result_file = (
        rdir
        / machine
        / f"{commit[:8]}-perfsuite-py{sys.version_info[0]}.{sys.version_info[1]}.json"
    )
    assert f"wrote {result_file}" in out
    machine_json = json.loads((rdir / machine / "machine.json").read_text())
    assert machine_json["machine"] == machine
    assert machine_json["version"] == 1
    [loaded] = list(iter_results(str(rdir)))
    assert loaded.commit_hash == commit
    benches = json.loads((rdir / "benchmarks.json").read_text())
    name = "perfsuite.test_inner.test_all.sum"
    assert benches[name]["type"] == "time"
    assert benches["perfsuite.test_inner.test_all.speedup"]["unit"] == "x"
    samples = doc["measurements"][0]["candidate"]["samples_s"]
    assert loaded.get_result_value(name, []) == [
        pytest.approx(sorted(samples)[len(samples) // 2], rel=1)
    ]
    assert loaded.get_result_samples(name, []) == [samples]
    assert loaded.get_result_value("perfsuite.test_inner.test_all.speedup", []) == [3.5]
    # A second export of the same commit merges (other benchmarks' results stay).
    path = Path(rdir / loaded._filename)
    data = json.loads(path.read_text())
    data["results"]["bench_other.time_x"] = [[1.0], []]
    path.write_text(json.dumps(data))
    assert main(["export-asv", str(results), "--results-dir", str(rdir)]) == 0
    again = Results.load(str(path))
    assert again.get_result_value("bench_other.time_x", []) == [1.0]
    assert again.get_result_value(name, []) == loaded.get_result_value(name, [])


def test_asv_publish_accepts_the_export(results: Path, pytester: pytest.Pytester) -> None:
    conf = {
        "version": 1,
        "project": "inner",
        "repo": ".",
        "branches": ["main"],
        "environment_type": "existing",
        "results_dir": "asvres",
        "html_dir": "html",
    }
    (pytester.path / "asv.conf.json").write_text("// asv allows comments\n" + json.dumps(conf))
    # results_dir comes from asv.conf.json when --results-dir is not given.
    assert main(["export-asv", str(results), "--config", str(pytester.path / "asv.conf.json")]) == 0
    proc = subprocess.run(
        [sys.executable, "-m", "asv", "publish", "--no-pull", "--config", "asv.conf.json"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    index = json.loads((pytester.path / "html" / "index.json").read_text())
    assert "perfsuite.test_inner.test_all.sum" in index["benchmarks"]
    graphs = list(
        (pytester.path / "html" / "graphs").rglob("perfsuite.test_inner.test_all.sum.json")
    )
    assert graphs


def test_results_without_a_commit_are_refused(pytester: pytest.Pytester, capsys) -> None:
    pytester.makepyfile(test_inner=INNER)
    out = pytester.path / "results.json"
    pytester.runpytest("--perf", "--perf-quick", "-p", "no:cacheprovider", f"--perf-json={out}")
    capsys.readouterr()
    assert main(["export-asv", str(out), "--results-dir", str(pytester.path / "r")]) == 2
    assert "records no git commit" in capsys.readouterr().err
    assert not (pytester.path / "r").exists()


def test_a_corrupted_asv_file_is_an_error_and_left_alone(results: Path, pytester, capsys) -> None:
    rdir = pytester.path / "asvres"
    rdir.mkdir()
    (rdir / "benchmarks.json").write_text("{broken")
    assert main(["export-asv", str(results), "--results-dir", str(rdir)]) == 2
    assert "benchmarks.json: not a readable asv JSON file" in capsys.readouterr().err
    assert (rdir / "benchmarks.json").read_text() == "{broken"
    assert sorted(p.name for p in rdir.iterdir()) == ["benchmarks.json"]


def test_bad_machine_name_names_the_option(results: Path, pytester, capsys) -> None:
    assert main(["export-asv", str(results), "--results-dir", "x", "--machine", "a/b"]) == 2
    assert "`--machine`='a/b' must be letters, digits" in capsys.readouterr().err
