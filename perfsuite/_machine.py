"""The machine and the checkout a measurement was made on: fingerprints, ids, and git.

Nothing here imports a framework: the fingerprint asks JAX and PyTorch only when the session
already imported them, so writing results never initialises a backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ._errors import PerfError


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


class GitError(PerfError):
    """A git command failed (not a repository, an unknown revision, git missing)."""


def git(repo: Path, *args: str, timeout: float = 10.0) -> str:
    """`git args` run in `repo` (never in whatever the current directory is); its stripped
    output, or `GitError` with git's own message."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitError(f"git {' '.join(args)} failed in {repo}: {exc}") from None
    if proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def git_or_none(repo: Path, *args: str, timeout: float = 10.0) -> str | None:
    """Like `git`, but None where it fails (for facts that are optional, e.g. a commit)."""
    try:
        return git(repo, *args, timeout=timeout)
    except GitError:
        return None


def commit_info(root: Path) -> dict[str, Any]:
    """The checkout `root` is in: commit, branch, whether tracked files differ, its top."""
    commit = git_or_none(root, "rev-parse", "HEAD")
    status = git_or_none(root, "status", "--porcelain", "--untracked-files=no")
    return {
        "id": commit,
        "branch": git_or_none(root, "rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status) if status is not None else None,
        "repo": git_or_none(root, "rev-parse", "--show-toplevel"),
    }
