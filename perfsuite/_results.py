"""The results document: fingerprint, commit, every measurement; written atomically."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any


SCHEMA = "perfsuite.results"
SCHEMA_VERSION = 1


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_smi() -> list[dict[str, str]]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, driver, memory = (part.strip() for part in line.split(","))
        gpus.append({"name": name, "driver": driver, "memory": memory})
    return gpus


def _tpu() -> str | None:
    if os.environ.get("TPU_ACCELERATOR_TYPE"):
        return os.environ["TPU_ACCELERATOR_TYPE"]
    return "present" if Path("/dev/accel0").exists() or Path("/dev/vfio/0").exists() else None


def machine_fingerprint(gpus: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The hardware part of the fingerprint, and its id. Never touches a framework."""
    if gpus is None:
        gpus = _nvidia_smi()
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "gpu_models": sorted(g["name"] for g in gpus),
        "tpu": _tpu(),
    }
    info["id"] = machine_id(info)
    return info


def fingerprint() -> dict[str, Any]:
    """What the numbers depend on: hardware, drivers, framework versions, XLA flags.

    Frameworks are asked only when the session already imported them; versions come from
    package metadata, so writing results never initialises a backend.
    """
    gpus = _nvidia_smi()
    info: dict[str, Any] = {
        **machine_fingerprint(gpus),
        "hostname": platform.node(),
        "system": platform.system(),
        "python": platform.python_version(),
        "versions": {
            name: _version(name) for name in ("jax", "jaxlib", "equinox", "optax", "torch", "numpy")
        },
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "gpus": gpus,
        "accelerator": None,
        "cuda": None,
    }
    if "torch" in sys.modules:
        info["cuda"] = getattr(sys.modules["torch"].version, "cuda", None)
    if "jax" in sys.modules:
        try:
            import jax

            devices = jax.devices()
            info["jax_backend"] = jax.default_backend()
            info["accelerator"] = f"{devices[0].platform}:{devices[0].device_kind} x{len(devices)}"
        except Exception as exc:  # a broken backend must not lose the results
            info["jax_backend"] = f"error: {exc}"
    if info["accelerator"] is None and gpus:
        info["accelerator"] = f"gpu:{gpus[0]['name']} x{len(gpus)}"
    return info


def series(doc: dict[str, Any]) -> dict[str, list[float]]:
    """Every timed series in a results document, by stable id: seconds per call per round.

    `measure` and `steps` give one series each (`<test>::<name>`); a comparison gives one per
    candidate (`<test>::<candidate>`). These are what baselines, `perfsuite ab` and asv use.
    """
    out: dict[str, list[float]] = {}
    for m in doc.get("measurements", []):
        kind = m.get("kind")
        if kind == "measure":
            out[m["id"]] = list(m["candidate"]["samples_s"])
        elif kind == "steps":
            out[m["id"]] = list(m["steps"]["samples_s"])
        elif kind == "compare":
            for cand in m["comparison"]["candidates"]:
                out[f"{m['test']}::{cand['name']}"] = list(cand["samples_s"])
    return out


#: The fingerprint fields a baseline must share with the current run (the hardware).
MACHINE_KEYS = ("machine", "cpu_model", "cores", "gpu_models", "tpu")


def machine_id(info: dict[str, Any]) -> str:
    """Stable id of the hardware a baseline is valid for (not versions, not the host name).

    Computed without importing any framework, so it is the same at configure time (when a
    baseline is looked up) and at the end of the session (when results are saved).
    """
    key = {k: info.get(k) for k in MACHINE_KEYS}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return f"{info.get('machine', 'unknown')}-{digest}"


def commit_info(root: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "id": commit,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status) if status is not None else None,
    }


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


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a mix.

    The data goes to a temporary file in the same directory, is flushed to disk, and only
    then renamed over `path` (atomic on POSIX): a run killed mid-write leaves the old file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: Path, document: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(document, indent=1, default=_default) + "\n")


def ensure_results_dir(path: Path) -> Path:
    """Create the results directory with a `.gitignore` of `*` (results are not sources)."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Created by perfsuite: results are machine-specific.\n*\n")
    return path


class SchemaError(ValueError):
    """A results or baseline file is unreadable, corrupted, or of another schema version."""


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
    if not isinstance(doc.get("measurements"), list):
        raise SchemaError(f"{path}: `measurements` must be a list.")
    return doc
