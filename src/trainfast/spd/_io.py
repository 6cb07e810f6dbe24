"""Metric logging (jsonl) and checkpointing (synchronous or in a writer thread)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


class JsonlLogger:
    """Append one JSON object per record to `path` (no file when `path` is `None`)."""

    def __init__(self, path: Path | None):
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


class Checkpointer:
    """Save `state_dict`s to `out_dir/model_{step}.pth`.

    Synchronous mode is upstream's `torch.save` on the training thread. Asynchronous mode
    snapshots the tensors with `clone()` on the device *at the same point* (AdamW later updates
    the parameters in place, so a reference would save the wrong values), then copies them to
    the host and writes the file in a thread; `close()` joins it. The copy is ordered after the
    clone on the same (default) stream, so no extra synchronization is needed.

    Args:
        out_dir: directory for checkpoints; `None` disables saving.
        asynchronous: write in a background thread.
    """

    def __init__(self, out_dir: Path | None, *, asynchronous: bool):
        self.out_dir = out_dir
        self.asynchronous = asynchronous
        self.paths: list[Path] = []
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    def save(self, state_dict: dict[str, Tensor], step: int) -> Path | None:
        """Save (or start saving) `state_dict` for `step`; returns the file path."""
        if self.out_dir is None:
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"model_{step}.pth"
        self.paths.append(path)
        if not self.asynchronous:
            torch.save(state_dict, path)
            return path
        snapshot = {k: v.detach().clone() for k, v in state_dict.items()}
        thread = threading.Thread(target=self._write, args=(snapshot, path), daemon=True)
        thread.start()
        self._threads.append(thread)
        return path

    def _write(self, snapshot: dict[str, Tensor], path: Path) -> None:
        try:
            torch.save({k: v.cpu() for k, v in snapshot.items()}, path)
        except BaseException as e:  # surfaced in close(): a thread cannot raise to the caller
            self._errors.append(e)

    def close(self) -> None:
        """Wait for pending writes; re-raise the first write error."""
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        if self._errors:
            raise self._errors[0]
