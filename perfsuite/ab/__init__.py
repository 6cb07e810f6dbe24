"""`perfsuite ab BASE [HEAD]`: two revisions measured side by side in paired processes.

Why processes: on a shared machine a process of identical code can run several percent
faster or slower than the next one for its whole life (on the 2-core CI VM, two processes of
one pure-Python loop, pinned to the same CPU and measured in alternating rounds, differed by
up to 7%), so the unit of replication is the process and every verdict averages over many.
Each run is one `pytest --perf --perf-json=...` in the revision's worktree; every series it
measured is reduced to one robust number per run (the median of its per-round samples).

Why side by side: the machine's speed also drifts over seconds and differs between CPUs.
The two runs of a pair, `(BASE_i, HEAD_i)`, therefore start together and take strict turns
(`perfsuite.ab._turns`): one timed round of BASE, one of HEAD, ..., each while the other waits,
both pinned to the same CPU (rotating over the allowed CPUs from pair to pair; `--no-pin`
leaves placement to the OS). Which side measures first alternates from pair to pair.
`--jobs N` runs N pairs at once, each pinned to its own CPU from its start: a pair's two sides
still share one CPU, so what the other pairs do to the machine hits both sides alike, and on
the 2-core CI VM two at once ran 1.27 pairs per second where one at a time ran 0.92
(calibration runs 7 and 5 of docs/calibration-ab.md, the same workload).

The paired log-ratios `log(HEAD_i / BASE_i)` get a confidence interval for their centre:
by default the Wilcoxon signed-rank (Hodges-Lehmann) interval, which assumes only that the
differences are symmetric about their centre, true for A/A by exchangeability and a good
approximation under a shift, and needs fewer pairs than the sign test for the same width
(asymptotic efficiency 0.95 vs 0.64 under normal noise); `--test sign` uses the
distribution-free sign-test interval instead. A measurement is a **regression** when the
interval's lower bound exceeds the `--fail` limit, **no regression** when its upper bound is
within it; otherwise more pairs run until `--max-runs` or `--budget`, and the verdict is
**inconclusive**, which is never reported as a pass.

The parts (each imported on first use, PEP 562: the plugin loads `perfsuite.ab._turns` in
every pytest run, which must not pay for NumPy):

- `_config`: `AbConfig`, what was asked, checked when made (`PerfUsageError`);
- `_git`: revisions to commits, throwaway worktrees; `_run_env`: the import path of a run in
  a worktree, derived from that worktree's project layout, and its pytest command;
- `_turns`: the turn-taking protocol, both ends (the parent's FIFOs, the run's `PytestTurns`
  that the plugin hands to the engine as its `before_round` hook);
- `_runs`: one run, a side-by-side pair; `_judge`: a series' verdict; `_loop`: `run_ab`;
- `_report`: text, Markdown, JSON; `_profile`: `--profile`; `_bisect`: `perfsuite bisect`
  and `ab-verdict`, each step one `run_ab` comparison.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from .._errors import AbError as AbError
    from ._bisect import Outcome as Outcome
    from ._bisect import Step as Step
    from ._bisect import bisect as bisect
    from ._config import AbConfig as AbConfig
    from ._git import resolve_commit as resolve_commit
    from ._git import worktrees as worktrees
    from ._judge import EXIT_ERROR as EXIT_ERROR
    from ._judge import EXIT_INCONCLUSIVE as EXIT_INCONCLUSIVE
    from ._judge import EXIT_OK as EXIT_OK
    from ._judge import EXIT_REGRESSION as EXIT_REGRESSION
    from ._judge import Series as Series
    from ._judge import Verdict as Verdict
    from ._judge import exit_code as exit_code
    from ._judge import judge as judge
    from ._loop import AB_SCHEMA as AB_SCHEMA
    from ._loop import AB_SCHEMA_VERSION as AB_SCHEMA_VERSION
    from ._loop import Progress as Progress
    from ._loop import run_ab as run_ab
    from ._profile import profile_regressions as profile_regressions
    from ._profile import render_profiles as render_profiles
    from ._report import render_markdown as render_markdown
    from ._report import render_text as render_text
    from ._report import write_json_report as write_json_report
    from ._run_env import import_roots as import_roots
    from ._run_env import package_roots as package_roots
    from ._run_env import run_env as run_env
    from ._runs import RunResult as RunResult
    from ._runs import run_once as run_once
    from ._runs import run_pair as run_pair
    from ._turns import PytestTurns as PytestTurns
    from ._turns import Turns as Turns
    from ._turns import TurnsError as TurnsError

#: Public name -> module that defines it (a test checks this against the imports above).
_EXPORTS = {
    "AbError": ".._errors",
    "AbConfig": "._config",
    "bisect": "._bisect",
    "Outcome": "._bisect",
    "Step": "._bisect",
    "resolve_commit": "._git",
    "worktrees": "._git",
    "EXIT_ERROR": "._judge",
    "EXIT_INCONCLUSIVE": "._judge",
    "EXIT_OK": "._judge",
    "EXIT_REGRESSION": "._judge",
    "Series": "._judge",
    "Verdict": "._judge",
    "exit_code": "._judge",
    "judge": "._judge",
    "AB_SCHEMA": "._loop",
    "AB_SCHEMA_VERSION": "._loop",
    "Progress": "._loop",
    "run_ab": "._loop",
    "profile_regressions": "._profile",
    "render_profiles": "._profile",
    "render_markdown": "._report",
    "render_text": "._report",
    "write_json_report": "._report",
    "import_roots": "._run_env",
    "package_roots": "._run_env",
    "run_env": "._run_env",
    "RunResult": "._runs",
    "run_once": "._runs",
    "run_pair": "._runs",
    "PytestTurns": "._turns",
    "Turns": "._turns",
    "TurnsError": "._turns",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'perfsuite.ab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
