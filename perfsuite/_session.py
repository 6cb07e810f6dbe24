"""Session-wide state of a `--perf` run: collected measurements, the device lock, output."""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
from pathlib import Path
from typing import Any

import pytest

from ._baseline_store import BaselineStore
from ._options import PerfConfig
from ._reference import Reference
from ._results import build_document, ensure_results_dir, write_json


class PerfSession:
    """Collects every measurement of the session and writes the results document."""

    def __init__(self, config: pytest.Config, perf_config: PerfConfig):
        self.config = config
        self.perf_config = perf_config
        self.measurements: list[dict[str, Any]] = []
        self.worker_id = os.environ.get("PYTEST_XDIST_WORKER")
        self.results_path: Path | None = None
        self.document: dict[str, Any] | None = None
        self.errors: list[str] = []
        #: Lines for the end of the run that are not failures (e.g. a file not written).
        self.notes: list[str] = []
        self.exitstatus = 0
        #: Number of xdist workers reporting to this (controller) session.
        self.workers = 0
        # What the stored-baseline gate (`perfsuite._baseline`) keeps for the session:
        #: per-series numbers of each saved session of `--perf-compare` (read at configure).
        self.baseline_sessions: list[Any] = []
        #: Why this session must not become a baseline (interrupted, ...), or None.
        self.incomplete: str | None = None
        #: Where `--perf-save` wrote, and the line that says so (or why it did not).
        self.saved_path: Path | None = None
        self.save_note: str | None = None
        #: The baselines of this results directory (`perfsuite._baseline_store`), made by
        #: the gate when it first needs them.
        self.baselines: BaselineStore | None = None
        #: The machine-speed reference, sampled between rounds (`perfsuite._reference`).
        self.reference = Reference()

    def add(self, record: dict[str, Any]) -> None:
        self.measurements.append(record)

    @contextlib.contextmanager
    def device_lock(self):
        """Serialise timed sections across xdist workers (one machine, one set of devices).

        Without xdist there is nothing to serialise against, and the lock is free.
        """
        if self.worker_id is None:
            yield
            return
        path = ensure_results_dir(self.perf_config.results_dir) / ".device.lock"
        with open(path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def serialisable(self) -> list[dict[str, Any]]:
        from ._results import _default

        return json.loads(json.dumps(self.measurements, default=_default))

    def finish(self, exitstatus: int = 0) -> None:
        """Write the results (controller or single process only).

        Never loses the run to the file system: a write that fails (a read-only `.perf/`, an
        unwritable `--perf-json`) becomes one note naming the path, shown after the table,
        and the session keeps the exit status of its tests.
        """
        cfg = self.perf_config
        self.exitstatus = int(exitstatus)
        self.measurements = self.serialisable()
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        session = {
            "quick": cfg.quick,
            "budget_s": cfg.budget_s,
            "args": list(self.config.invocation_params.args),
            "exitstatus": self.exitstatus,
            "interrupted": interrupted,
        }
        self.document = build_document(
            self.measurements, root=Path(self.config.rootpath), session=session
        )
        from . import _baseline

        _baseline.apply(self)
        path: Path = cfg.results_dir
        try:
            if cfg.json_path is not None:
                path = Path(cfg.json_path)
                if not path.is_absolute():
                    path = Path(self.config.invocation_params.dir) / path
                write_json(path, self.document)
                self.results_path = path
            elif not self.measurements:
                # `--co`, an empty selection, or tests that measured nothing: no file, and
                # `latest.json` keeps pointing at the last run that measured something.
                self.notes.append(
                    f"nothing measured, so no results file was written; "
                    f"{cfg.results_dir / 'latest.json'} is left as it was."
                )
            else:
                path = cfg.results_dir
                self.results_path = _write_unique(ensure_results_dir(path), self.document)
                path = cfg.results_dir / "latest.json"
                if interrupted:
                    self.notes.append(
                        f"the session was interrupted: {path} is left as it was (the partial "
                        f"results are in {self.results_path})."
                    )
                else:
                    write_json(path, self.document)
        except OSError as exc:
            self.notes.append(
                f"could not write the results to {path}: {exc.strerror or exc}; the "
                "measurements of this session are only in the table above."
            )
        try:
            _baseline.save_if_asked(self)
        except OSError as exc:
            self.notes.append(
                f"could not save the baseline under {cfg.results_dir}: {exc.strerror or exc}."
            )


def _write_unique(folder: Path, document: dict[str, Any]) -> Path:
    """Write `results-<time to the microsecond>.json`, never replacing an existing file.

    Sessions finishing in the same second (or microsecond) each keep their own file: the
    name is created exclusively, with a counter on a clash. Names sort by time.
    """
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    for n in range(1000):
        path = folder / f"results-{stamp}{f'-{n}' if n else ''}.json"
        try:
            write_json(path, document, exclusive=True)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: 1000 results files named results-{stamp}-*.json exist.")
