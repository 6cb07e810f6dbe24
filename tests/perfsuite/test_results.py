"""The results document: contents, default location, atomic writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from perfsuite._results import SCHEMA, SCHEMA_VERSION, SchemaError, load_document, write_atomic


ONE_TEST = """
import pytest

@pytest.mark.perf
def test_x(perf):
    perf.measure(lambda: sum(range(1000)), name="sum")
"""


def test_document_has_schema_fingerprint_commit_and_raw_samples(run_perf, pytester):
    pytester.makepyfile(ONE_TEST)
    result, doc = run_perf()
    result.assert_outcomes(passed=1)
    assert doc["schema"] == SCHEMA
    assert doc["schema_version"] == SCHEMA_VERSION
    machine = doc["machine"]
    for key in ("cpu_model", "cores", "gpus", "versions", "xla_flags", "python", "id", "cuda"):
        assert key in machine, key
    assert set(machine["versions"]) >= {"jax", "jaxlib", "torch"}
    assert set(doc["commit"]) == {"id", "branch", "dirty", "repo"}
    (m,) = doc["measurements"]
    assert m["id"].endswith("test_x::sum")
    samples = m["candidate"]["samples_s"]
    assert len(samples) == m["candidate"]["stats"]["rounds"]
    assert all(s > 0 for s in samples)
    assert m["candidate"]["stats"]["median"] == pytest.approx(
        sorted(samples)[len(samples) // 2], rel=1
    )


def test_default_location_is_dot_perf_with_its_own_gitignore(pytester):
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest("--perf", "--perf-quick", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    perf_dir = pytester.path / ".perf"
    assert (perf_dir / ".gitignore").read_text().splitlines()[-1] == "*"
    results = sorted(perf_dir.glob("results-*.json"))
    assert len(results) == 1
    assert json.loads((perf_dir / "latest.json").read_text()) == json.loads(results[0].read_text())
    result.stdout.fnmatch_lines(["*perf: results written to *.perf/results-*.json"])


def test_write_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "r.json"
    write_atomic(path, "old")
    write_atomic(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    write_atomic(path, "old")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new" * 1000)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_process_killed_mid_write_leaves_previous_file(tmp_path):
    # A real SIGKILL after the new data is on disk but before the rename.
    path = tmp_path / "r.json"
    write_atomic(path, '{"old": true}')
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from perfsuite import _results

        def killed(src, dst):
            os.kill(os.getpid(), signal.SIGKILL)

        _results.os.replace = killed
        _results.write_atomic(Path({str(path)!r}), '{{"new": true}}' * 100000)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -9
    assert json.loads(path.read_text()) == {"old": True}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a readable JSON results file"),
        ('{"schema": "other"}', "not a perfsuite results file"),
        (
            json.dumps({"schema": SCHEMA, "schema_version": 99, "measurements": []}),
            "schema version 99",
        ),
        (
            json.dumps({"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "measurements": {}}),
            "must be a list",
        ),
    ],
)
def test_load_document_refuses_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SchemaError, match=message):
        load_document(path)
