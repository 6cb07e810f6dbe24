"""`perfsuite calibrate SCENARIO` (issue 13): the former `scripts/calibrate_*.py` as scenarios.

The pure parts (rates and their Wilson intervals, each scenario's counting and table) are
checked on known counts; the command line on its help, its bad values (exit 2, one line naming
the option and the rule) and the commands docs/ cites (they must still parse); one scenario
runs for real, tiny. The long calibrations themselves are not part of the tests.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from perfsuite import cli
from perfsuite.calibrate import SCENARIOS, _ab, _baseline, _compare, _counts, _memory
from perfsuite.calibrate._rates import Deadline, Rate, markdown_table
from perfsuite.cli import main


ROOT = Path(__file__).resolve().parents[2]
#: script -> the scenario it now runs
WRAPPERS = {
    "calibrate_stats.py": "compare",
    "calibrate_baseline.py": "baseline",
    "calibrate_ab.py": "ab",
    "calibrate_counts.py": "counts",
    "calibrate_memory.py": "memory",
}


# --------------------------------------------------------------------------- rates


def test_wilson_intervals_of_known_counts():
    # 8 of 10 at 95%: the textbook Wilson interval [0.4902, 0.9433].
    lo, hi = Rate(8, 10).wilson95
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    # 0 of 300: the upper bound docs/calibration-stats.md quotes (1.26%).
    assert Rate(0, 300).wilson95 == pytest.approx((0.0, 0.012643), abs=1e-6)
    assert Rate(0, 300).cell(2) == "0.00% [0.00%, 1.26%]"
    assert Rate(8, 10).cell() == "80% [49%, 94%]"
    assert Rate(8, 10).rate == 0.8
    assert (Rate(0, 0).rate, Rate(0, 0).cell()) == (None, "n/a")


def test_markdown_table_and_deadline():
    assert markdown_table(["a", "b"], [[1, "x"]]) == ["| a | b |", "|---|---|", "| 1 | x |"]
    assert not Deadline(None).passed()
    assert Deadline(-1.0).passed()
    assert not Deadline(1e9).passed()


# --------------------------------------------------------------------------- compare


def test_compare_counts_wrong_verdicts_as_the_script_did():
    counts = {"pass": 1, "fail": 2, "inconclusive": 3}
    # Must pass: a failure and an inconclusive are both wrong.
    assert _compare.wrong_verdicts(counts, "pass") == 5
    # Must fail: inconclusive fails the test too, so only the pass is wrong.
    assert _compare.wrong_verdicts(counts, "fail") == 1
    row = _compare.row("4x", counts, [12, 10, 11], [1.0, 2.0, 3.0, 2.0, 2.0, 2.0])
    assert row == [
        "speedup ~4x, at_least=5",
        "6",
        "1",
        "2",
        "3",
        Rate(1, 6).cell(2),
        ">= 99% failures",
        "11",
        "2.00",
    ]
    assert row[5] == "16.67% [3.01%, 56.35%]"


def test_a_tiny_compare_run_writes_its_table(tmp_path, capsys):
    # One stall trial under quick settings (~1 s): the must-fail scenario's verdict is counted,
    # the Markdown file carries the explanation and the table. No true ratio is measured for
    # the stall scenario (its truth is by construction).
    out = tmp_path / "stats.md"
    args = ["calibrate", "compare", "--quick", "--only", "stall", "--extra-trials", "1"]
    assert main([*args, "--markdown", str(out)]) == 0
    printed = capsys.readouterr()
    (line,) = [x for x in printed.out.splitlines() if x.startswith("| stalls")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "1"
    assert sum(int(c) for c in cells[2:5]) == 1
    assert "true ratios" not in printed.out
    assert "stalls 1 in 10 vs steady" in printed.err  # progress, on stderr
    text = out.read_text()
    assert text.startswith("# perfsuite verdict calibration\n\n")
    assert "| scenario | trials | pass | fail | inconclusive |" in text


# --------------------------------------------------------------------------- baseline


def test_baseline_scenarios_parse_and_summarise():
    assert _baseline.parse_scenarios("aa:1,x2:5") == [("aa:1", 1.0, 1), ("x2:5", 2.0, 5)]
    trials = [
        {"scenario": "x2:1", "failed": f, "verdicts": {}, "ratios": {"loop": r}, "raw_failed": f}
        for f, r in ((True, 2.0), (True, 1.9), (False, 1.2), (True, 2.1))
    ]
    s = _baseline.summarise(trials)["x2:1"]
    assert (s["sessions"], s["failed"], s["rate"]) == (4, 3, 0.75)
    assert s["wilson95"] == list(Rate(3, 4).wilson95)
    assert (s["raw_failed"], s["ratio_min"], s["ratio_max"]) == (3, 1.2, 2.1)
    sd = s["sd_log_ratio"]["loop"]
    logs = [math.log(r) for r in (2.0, 1.9, 1.2, 2.1)]
    mean = sum(logs) / 4
    assert sd == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in logs) / 3))


# --------------------------------------------------------------------------- ab


def test_ab_markdown_rates_are_the_summary_counts():
    trials = [
        {"ab": {"p3": {"verdict": v}}, "benchmark": {"p3": {"ratio": 1.0, "fail": b}}}
        for v, b in (("regression", True), ("regression", False), ("no regression", False))
    ]
    doc = {
        "summary": _ab.summarise(trials, None),
        "trials": [{"ab_seconds": 10.0}, {"ab_seconds": 20.0}, {"ab_seconds": 30.0}],
        "settings": {"fail": "1%", "min_runs": 8, "max_runs": 12, "budget": 60.0, "level": 0.99}
        | {"n": 20000},
        "machine": {"cpu_model": "cpu", "cores": 2},
        "load_at_start": [1.0, 1.0, 1.0],
        "started": "now",
    }
    text = _ab.markdown(doc)
    assert f"| p3 (+3%) | 3 | 2 | {Rate(2, 3).cell()} | caught >= 80% | 1/3 |" in text
    assert Rate(2, 3).cell() == "67% [21%, 94%]"
    assert "Mean wall time per trial (its scenarios at once): 20 s." in text


def test_a_tiny_ab_run_gives_a_verdict_per_scenario(tmp_path, capsys):
    # One trial, two pairs, no pytest-benchmark side (~10 s): every scenario gets a verdict
    # from a real `perfsuite ab`, the JSON holds the ab options only (not the gate's).
    out, md = tmp_path / "ab.json", tmp_path / "ab.md"
    argv = ["calibrate", "ab", "--trials", "1", "--no-benchmark", "--min-runs", "2"]
    argv += ["--max-runs", "2", "--budget", "10", "--n", "2000", "--out", str(out)]
    assert main([*argv, "--markdown", str(md)]) == 0
    doc = json.loads(out.read_text())
    (trial,) = doc["trials"]
    assert set(trial["ab"]) == set(_ab.SCENARIOS)
    assert all(m["pairs"] == 2 for m in trial["ab"].values())
    assert {s["trials"] for s in doc["summary"].values()} == {1}
    assert set(doc["settings"]) == {
        "trials", "time_limit", "fail", "min_runs", "max_runs", "budget", "level", "workload",
        "n", "jobs", "perf_args", "scenarios", "one_per_trial", "benchmark_max_time",
        "no_benchmark", "out", "markdown",
    }  # fmt: skip
    assert doc["settings"]["scenarios"] == "aa,p3,p10"
    assert md.read_text() == _ab.markdown(doc)
    assert "[calibrate ab] trial 1/1" in capsys.readouterr().err


# --------------------------------------------------------------------------- counts, memory


def test_counts_rows_judge_every_session_against_the_first():
    def session(calls_a, calls_b, unstable=()):
        return {
            "loop:A": {"values": {"python_calls": calls_a, "ops": 5}, "unstable": list(unstable)},
            "loop:B": {"values": {"python_calls": calls_b, "ops": 5}, "unstable": []},
        }

    docs = [session(200, 201), session(200, 201), session(201, 201), session(200, 200, ["ops"])]
    (row,) = _counts.rows_from(docs)
    assert row["aa_sessions"] == 3
    assert row["aa_with_a_difference"] == 1  # the session whose A read 201
    assert row["aa_with_ungated_counters"] == 1  # `ops` read as unstable once
    assert row["plus_one_caught"] == 2  # the last session's B did not make the extra call
    assert row["plus_one_changes"] == [("python_calls", 1)]
    (line,) = _counts.table([row])[2:]
    assert line == "| loop | 2 | 200 | 3 | 1 | 1 | 2/3 | python_calls +1 |"


def test_memory_readings_against_the_calibrated_tolerance():
    from perfsuite._memory import HOST_RSS_SLACK_BYTES, HOST_RSS_TOLERANCE

    size = 128 * _memory.MiB
    allowed = HOST_RSS_TOLERANCE * size + HOST_RSS_SLACK_BYTES
    assert _memory.judge_readings([size] * 5, size)["ok"]
    off = int(allowed) + 4096
    assert not _memory.judge_readings([size] * 4 + [size + off], size)["ok"]  # one reading
    assert not _memory.judge_readings([size + off] * 5, size)["ok"]  # the median vs the size
    # Below the mmap threshold a block may come from the heap and read 0: spread only.
    assert _memory.judge_readings([0] * 5, _memory.MiB)["ok"]


# --------------------------------------------------------------------------- command line


def test_help_lists_the_scenarios(capsys):
    assert main(["calibrate", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SCENARIOS)
    assert "--builtin" in out
    assert "--slowdowns" in out


@pytest.mark.parametrize(
    ("scenario", "options"),
    [
        ("compare", ["--trials", "--quick", "--extra-trials", "--only", "--statistic"]),
        ("baseline", ["--scenarios", "--detect-trials", "--rebaseline", "--tree", "--out"]),
        ("ab", ["--scenarios", "--one-per-trial", "--perf-args", "--no-benchmark", "--jobs"]),
        ("counts", ["--processes", "--per-process", "--jobs", "--json"]),
        ("memory", ["--calls", "--json"]),
    ],
)
def test_each_scenario_lists_its_options(capsys, scenario, options):
    assert main(["calibrate", scenario, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: perfsuite calibrate {scenario} ")
    assert all(o in out for o in options)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--trials", "0"], "--trials: Could not parse value: '0'. Expected a positive"),
        (["compare", "--extra-trials", "-1"], "--extra-trials: Could not parse value: '-1'"),
        (["compare", "--only", "aa,zz"], "--only: Could not parse value: 'aa,zz'. Expected"),
        (["compare", "--only", "aa,aa"], "each once"),
        (["compare", "--statistic", "min"], "--statistic: invalid choice: 'min'"),
        (["baseline", "--out", "x", "--scenarios", "x3:1"], "SLOWDOWN one of ['aa', 'p10'"),
        (["baseline", "--out", "x", "--scenarios", "aa:0"], "SESSIONS a whole number >= 1"),
        (["baseline", "--out", "x", "--fail", "5"], "--fail: Could not parse value: '5'"),
        (["baseline"], "the following arguments are required: --out"),
        (["ab", "--scenarios", "p5"], "--scenarios: Could not parse value: 'p5'"),
        (["ab", "--level", "2"], "--level: Could not parse value: '2'. Expected a confidence"),
        (["ab", "--time-limit", "-5"], "--time-limit: Could not parse value: '-5'"),
        (["counts", "--jobs", "0"], "--jobs: Could not parse value: '0'"),
        (["memory", "--calls", "many"], "--calls: Could not parse value: 'many'"),
    ],
)
def test_a_bad_value_exits_2_with_one_line_naming_option_and_rule(capsys, argv, message):
    assert main(["calibrate", *argv]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"perfsuite calibrate {argv[0]}: error: ")
    assert message in errors[0]


def test_gate_options_before_a_scenario_are_refused(capsys):
    assert main(["calibrate", "--aa", "3", "--trials", "4", "compare"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "options before SCENARIO are the stored-baseline gate's" in line
    assert "got --aa, --trials; put `compare`'s options after it" in line


def test_scenarios_take_no_pytest_arguments_and_counts_needs_two_sessions(capsys):
    assert main(["calibrate", "memory", "--", "tests/"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "perfsuite: error: `perfsuite calibrate memory` takes no pytest arguments after `--` "
        "(its workload is built in), got ['tests/']."
    ]
    assert main(["calibrate", "counts", "--processes", "1", "--per-process", "1"]) == 2
    assert "--processes x --per-process must be >= 2" in capsys.readouterr().err


# --------------------------------------------------------------------------- the scripts


@pytest.mark.parametrize(("script", "scenario"), sorted(WRAPPERS.items()))
def test_each_script_is_a_wrapper_of_its_scenario(script, scenario):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: perfsuite calibrate {scenario} ")
    # A thin wrapper: no trial loop, interval or table of its own left in it.
    code = (ROOT / "scripts" / script).read_text()
    assert "wilson" not in code
    assert len(code.splitlines()) < 40


def _cited_commands() -> list[tuple[str, list[str]]]:
    """Every `python scripts/calibrate_*.py ...` command in docs/*.md and the Makefile."""
    found = []
    for path in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "Makefile"]:
        text = path.read_text().replace("\\\n", " ")
        for m in re.finditer(r"python scripts/(calibrate_\w+\.py)([^\n`;#]*)", text):
            found.append((path.name, [WRAPPERS[m[1]], *shlex.split(m[2])]))
    return found


def test_every_command_the_docs_cite_still_parses():
    cited = _cited_commands()
    assert {argv[0] for _, argv in cited} == set(WRAPPERS.values())  # every script is cited
    for where, argv in cited:
        try:
            cli._parser().parse_args(["calibrate", *argv])
        except SystemExit as exc:
            pytest.fail(f"{where}: `{shlex.join(argv)}` does not parse (exit {exc.code})")
