"""Where baselines live: `.perf/<machine-id>/NNNN_<NAME>.json`, one file per saved session.

`BaselineStore` finds, loads, numbers and saves them; the session owns one
(`PerfSession.baselines`). No pytest here: a bad `--perf-compare` is a `PerfUsageError`
naming the option, which the plugin shows as a usage error.

- Files are numbered across every name of the machine (`0007_main.json`), so the newest
  session of a name is the highest number; `--perf-save=NAME` again adds a session to NAME,
  and only the newest `MAX_SESSIONS` of NAME are kept (older ones are deleted).
- A comparison reads the newest `MAX_SESSIONS` sessions of NAME for this machine; another
  machine's only with `--perf-allow-cross-machine`, never silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import PerfUsageError, SchemaError
from ._results import MACHINE_KEYS, load_document, write_json


#: Sessions kept per baseline name; `--perf-save` deletes older ones beyond this.
MAX_SESSIONS = 20

_SAVED = re.compile(r"^(\d{4,})_(.+)\.json$")


def find_sessions(folder: Path, name: str) -> list[Path]:
    """Every saved session of baseline `name` in `folder`, oldest first."""
    hits = [
        (int(m[1]), p)
        for p in folder.glob("*.json")
        if (m := _SAVED.match(p.name)) and m[2] == name
    ]
    return [p for _, p in sorted(hits)]


@dataclass(frozen=True)
class Saved:
    """What `BaselineStore.save` did."""

    path: Path
    #: Sessions NAME holds now, and how many older ones were deleted beyond the cap.
    kept: int
    pruned: int


class BaselineStore:
    """The baselines of one results directory, as seen from one machine."""

    def __init__(self, results_dir: Path, machine: str):
        self.results_dir = Path(results_dir)
        self.machine = machine

    @property
    def folder(self) -> Path:
        return self.results_dir / self.machine

    def sessions(self, name: str) -> list[Path]:
        """This machine's sessions of `name`, oldest first."""
        return find_sessions(self.folder, name)

    def newest(self, name: str) -> Path | None:
        found = self.sessions(name)
        return found[-1] if found else None

    def next_path(self, name: str) -> Path:
        """Where the next session saved (under any name) on this machine goes."""
        numbers = [int(m[1]) for p in self.folder.glob("*.json") if (m := _SAVED.match(p.name))]
        return self.folder / f"{max(numbers, default=0) + 1:04d}_{name}.json"

    def save(self, name: str, document: dict[str, Any]) -> Saved:
        """Add `document` as the newest session of `name` (atomically), keep the newest
        `MAX_SESSIONS`."""
        existing = self.sessions(name)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.next_path(name)
        write_json(path, document)
        sessions = [*existing, path]
        # Oldest first; a session beyond the cap no longer takes part in any comparison.
        for old in sessions[:-MAX_SESSIONS]:
            old.unlink(missing_ok=True)
        kept = min(len(sessions), MAX_SESSIONS)
        return Saved(path, kept, len(sessions) - kept)

    def other_machines(self, name: str) -> list[Path]:
        """Sessions of `name` saved on other machines, sorted by folder then number."""
        return sorted(
            p
            for p in self.results_dir.glob(f"*/[0-9][0-9][0-9][0-9]*_{name}.json")
            if p.parent.name != self.machine and (m := _SAVED.match(p.name)) and m[2] == name
        )

    def resolve(
        self,
        ref: str,
        *,
        cwd: Path,
        allow_cross_machine: bool,
        differences: Callable[[dict[str, Any]], str],
    ) -> list[Path]:
        """The session files `--perf-compare=ref` means, oldest first: a results file (one
        session) when `ref` is a path, else the newest `MAX_SESSIONS` of the name."""
        as_path = Path(ref)
        if not as_path.is_absolute():
            as_path = Path(cwd) / as_path
        if ref.endswith(".json") or as_path.is_file():
            return [as_path]
        found = self.sessions(ref)
        if found:
            return found[-MAX_SESSIONS:]
        elsewhere = self.other_machines(ref)
        if elsewhere and allow_cross_machine:
            return find_sessions(elsewhere[-1].parent, ref)[-MAX_SESSIONS:]
        if elsewhere:
            try:
                what = differences(load_document(elsewhere[-1]).get("machine", {}))
            except SchemaError as exc:
                what = f"and it is unreadable: {exc}"
            raise PerfUsageError(
                f"--perf-compare={ref}: no baseline {ref!r} for this machine ({self.machine}); "
                f"the one found was saved on another machine ({elsewhere[-1]}); {what}. "
                "Pass --perf-allow-cross-machine to compare anyway."
            )
        raise PerfUsageError(
            f"--perf-compare={ref}: no baseline named {ref!r} for this machine ({self.machine}) "
            f"under {self.results_dir}, and no such file. Save one with --perf-save={ref}."
        )


def machine_differences(other: dict[str, Any], mine: dict[str, Any]) -> str:
    """What differs between two machine fingerprints, for a message."""
    diffs = [
        f"{key}: baseline {other.get(key)!r} vs here {mine.get(key)!r}"
        for key in MACHINE_KEYS
        if other.get(key) != mine.get(key)
    ]
    return "; ".join(diffs) or "machine ids differ"
