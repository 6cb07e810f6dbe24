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

from ._options import PerfConfig
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
        #: Number of xdist workers reporting to this (controller) session.
        self.workers = 0

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

    def finish(self) -> None:
        """Write the results (controller or single process only)."""
        cfg = self.perf_config
        self.measurements = self.serialisable()
        session = {
            "quick": cfg.quick,
            "budget_s": cfg.budget_s,
            "args": list(self.config.invocation_params.args),
        }
        self.document = build_document(
            self.measurements, root=Path(self.config.rootpath), session=session
        )
        from . import _baseline

        _baseline.apply(self)
        if cfg.json_path is not None:
            path = Path(cfg.json_path)
            if not path.is_absolute():
                path = Path(self.config.invocation_params.dir) / path
        else:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            path = ensure_results_dir(cfg.results_dir) / f"results-{stamp}.json"
        write_json(path, self.document)
        if cfg.json_path is None:
            write_json(cfg.results_dir / "latest.json", self.document)
        self.results_path = path
        _baseline.save_if_asked(self)
