"""The results document: fingerprint, commit, every measurement; written atomically.

Its series (`Series`, `iter_series`, `run_statistics`) are `_results_series` and its schema
check (`validate_document`) `_results_schema`, both re-exported here: readers import them
from this module.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from ._errors import SchemaError as SchemaError
from ._machine import MACHINE_KEYS as MACHINE_KEYS
from ._machine import commit_info as commit_info
from ._machine import fingerprint as fingerprint
from ._machine import machine_fingerprint as machine_fingerprint
from ._machine import machine_id as machine_id
from ._results_schema import validate_document as validate_document
from ._results_series import MEMORY_SUFFIX as MEMORY_SUFFIX
from ._results_series import Profiles as Profiles
from ._results_series import Series as Series
from ._results_series import iter_profiles as iter_profiles
from ._results_series import iter_series as iter_series
from ._results_series import measurement_series as measurement_series
from ._results_series import run_statistics as run_statistics
from ._results_series import series as series


SCHEMA = "perfsuite.results"
SCHEMA_VERSION = 1


def _default(obj: Any) -> Any:
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):
        return to_json()
    if hasattr(obj, "item"):  # NumPy scalars
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def build_document(
    measurements: list[dict[str, Any]], *, root: Path, session: dict[str, Any]
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "session": session,
        "machine": fingerprint(),
        "commit": commit_info(root),
        "measurements": json.loads(json.dumps(measurements, default=_default)),
    }


def write_atomic(path: Path, text: str | bytes, *, exclusive: bool = False) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a mix.

    The data goes to a temporary file in the same directory, is flushed to disk, and only
    then renamed over `path` (atomic on POSIX): a run killed mid-write leaves the old file.
    With `exclusive`, an existing `path` is never replaced: `FileExistsError` instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            # A hard link is created atomically and only if the name is free, so two
            # sessions can never clobber each other's file, and no reader sees it half-done.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise
            except OSError:  # no hard links on this file system: reserve the name instead
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _json_safe(obj: Any) -> Any:
    """`obj` with every non-finite float as None: JSON has no NaN or Infinity.

    What can legitimately be non-finite in a document is a derived number, e.g. the bound of
    an interval with too few rounds to bound it; `null` is how such a number is written
    (as `perfsuite ab` and the asv export already do). Measured values never are: they are
    refused where they enter (`perf.record`) and by `validate_document`.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if obj is None or isinstance(obj, (str, int)):
        return obj
    return _json_safe(_default(obj))


def dumps_document(document: dict[str, Any]) -> str:
    """The document as strict JSON text (what every other tool can parse)."""
    try:
        return json.dumps(_json_safe(document), indent=1, allow_nan=False) + "\n"
    except ValueError as exc:  # cannot happen after _json_safe; never write non-JSON anyway
        raise ValueError(f"results document is not valid JSON: {exc}") from None


def write_json(path: Path, document: dict[str, Any], *, exclusive: bool = False) -> None:
    write_atomic(path, dumps_document(document), exclusive=exclusive)


def ensure_results_dir(path: Path) -> Path:
    """Create the results directory with a `.gitignore` of `*` (results are not sources)."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Created by perfsuite: results are machine-specific.\n*\n")
    return path


def load_document(path: Path) -> dict[str, Any]:
    """Read a results document, refusing anything that is not ours or not this version."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such results file.") from None
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: not a readable JSON results file ({exc}).") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise SchemaError(f"{path}: not a perfsuite results file (missing schema {SCHEMA!r}).")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: schema version {doc.get('schema_version')!r}; this perfsuite reads "
            f"version {SCHEMA_VERSION}."
        )
    validate_document(doc, path)
    return doc
