"""`perfsuite ab` on the H200 after the move to `perfsuite/ab/` (issue 13): verdicts, as Markdown.

Usage (on the device, from the tree, nothing installed; under 4 minutes):

    PYTHONPATH=src:.:.gpu-site python3 scripts/h200_ab.py [--budget-s 220] [--json PATH]
    PYTHONPATH=src:. python3 scripts/h200_ab.py --smoke      # a CPU check of the script itself

What it checks, on a throwaway git repository of a src-layout package (`src/gpuwork`, not
installed: each run must import its own revision's copy through `perfsuite.ab.run_env`) with
a CUDA perf test (torch matmuls, `perf.measure`, the `torch-cuda` instrument's device sync):

1. `c0 -> c2` side by side (the default: two CUDA processes taking turns round by round through
   the engine's `before_round` hook): c2 does each matmul twice, so HEAD/BASE ~2x: expected
   **regression**.
2. the same with `--sequential` (one run after the other): expected **regression**.
3. `c0 -> c1` side by side, c1 differing by a comment only (A/A): expected **no regression**
   (inconclusive is possible on a busy GPU, regression is a false alarm).

Each row: the verdict, HEAD/BASE with its interval, pairs, wall time. A ratio near 2x for
c0 -> c2 also shows that each side imported its own revision's `gpuwork` (had one side
imported the other's copy, both would run the same code: ~1x). A comparison is skipped (and
said so) once the budget is spent. Exit 0 when every row is as expected.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
START = time.perf_counter()

WORK_GPU = '''"""A CUDA matmul workload; VERSION names the revision."""

import torch

VERSION = {version}
REPEAT = {repeat}  # {comment}

_A = None


def work():
    global _A
    if _A is None:
        _A = torch.randn(2048, 2048, device="cuda")
    out = _A
    for _ in range(REPEAT):
        out = _A @ _A
    return out
'''

WORK_CPU = '''"""A pure-Python workload (`--smoke`); VERSION names the revision."""

VERSION = {version}
REPEAT = {repeat}  # {comment}


def work():
    return [sum(range(2000)) for _ in range(REPEAT)]
'''

TEST = """import pytest

import gpuwork


@pytest.mark.perf
def test_mm(perf):
    perf.measure(gpuwork.work, name="mm")
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(tmp: Path, smoke: bool) -> list[str]:
    """Commits c0 (one matmul), c1 (a comment more: A/A), c2 (each matmul twice)."""
    repo = tmp / "proj"
    (repo / "src" / "gpuwork").mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "h200@perfsuite.invalid")
    git(repo, "config", "user.name", "h200")
    (repo / "test_gpu.py").write_text(TEST)
    template = WORK_CPU if smoke else WORK_GPU
    commits = []
    for version, repeat, comment in ((0, 1, "base"), (1, 1, "base, a comment more"), (2, 2, "x2")):
        (repo / "src" / "gpuwork" / "__init__.py").write_text(
            template.format(version=version, repeat=repeat, comment=comment)
        )
        git(repo, "add", ".")
        git(repo, "commit", "-qm", f"c{version}")
        commits.append(git(repo, "rev-parse", "HEAD"))
    return commits


def run_ab(repo: Path, base: str, head: str, extra: list[str], out: Path, budget: float) -> dict:
    env = dict(os.environ)
    # The perfsuite under test, by absolute path: the runs start in worktrees elsewhere.
    paths = [ROOT, ROOT / "src", ROOT / ".gpu-site"]
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths if p.is_dir())
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # -p perfsuite.plugin, from the tree
    cmd = [
        sys.executable, "-m", "perfsuite.cli", "ab", base, head, "--repo", str(repo),
        "--min-runs", "5", "--max-runs", "8", "--level", "0.9", "--fail", "5%",
        "--budget", f"{budget:.0f}", "--quiet", "--json", str(out), *extra,
        "--", "--perf-quick",
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    doc = json.loads(out.read_text()) if out.is_file() else {}
    doc["_wall_s"] = time.perf_counter() - t0
    doc["_returncode"] = proc.returncode
    doc["_tail"] = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
    return doc


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget-s", type=float, default=220.0)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--smoke", action="store_true", help="CPU workload: check the script itself")
    args = p.parse_args()
    if not args.smoke:
        import torch

        if not torch.cuda.is_available():
            print("no CUDA: nothing to check here (use --smoke for a CPU check of the script)")
            return 2
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    from perfsuite.ab import package_roots

    print(f"\nthis repository's import roots (from its pyproject): {package_roots(ROOT)}\n")
    cases = [
        ("c0 -> c2 side by side", 0, 2, [], {"regression"}),
        ("c0 -> c2 --sequential", 0, 2, ["--sequential"], {"regression"}),
        ("c0 -> c1 side by side (A/A)", 0, 1, [], {"no regression", "inconclusive"}),
    ]
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        commits = make_repo(Path(tmp), args.smoke)
        repo = Path(tmp) / "proj"
        for k, (label, b, h, extra, expected) in enumerate(cases):
            left = args.budget_s - (time.perf_counter() - START)
            share = left / (len(cases) - k)
            if share < 20:
                rows.append((label, "skipped: budget spent", "", "", "", "", ""))
                ok = False
                continue
            doc = run_ab(repo, commits[b], commits[h], extra, Path(tmp) / f"ab{k}.json", share - 10)
            ms = [m for m in doc.get("measurements", []) if m["pairs"]]
            if not ms:
                rows.append((label, f"error (exit {doc['_returncode']})", "", "", "", "", ""))
                print(f"{label}:\n{doc['_tail']}\n")
                ok = False
                continue
            m = ms[0]
            verdict = m["verdict"]
            # c2 runs twice the matmuls: only a side that imported its own copy sees ~2x.
            own = h != 2 or (m["ratio"] or 0) > 1.5
            good = verdict in expected and own
            ok &= good
            interval = "n/a" if m["low"] is None else f"[{m['low']:.3f}, {m['high'] or 0:.3f}]"
            rows.append(
                (label, verdict, f"{m['ratio']:.3f}x" if m["ratio"] else "n/a", interval,
                 str(m["pairs"]), f"{doc['_wall_s']:.0f} s",
                 ("yes" if good else "NO (unexpected)"))
            )  # fmt: skip
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))
    print("| comparison | verdict | HEAD/BASE | 90% interval | pairs | wall | as expected |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\ntotal {time.perf_counter() - START:.0f} s; all as expected: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
