"""What a run records about where it ran: git, Python, packages, command, host.

These are the built-in ``mlops_run_context`` providers (registered by
:mod:`mlops_sdk.builtin`). What cannot change within a process (Python,
packages, host) is computed once per process; git is read at every run start,
since code changes between runs in a notebook.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from typing import Any

from mlops_sdk.redact import redact_argv, redact_mapping

MAX_DIFF_BYTES = 1 << 20
_ENV_PREFIXES = ("MLOPS_", "CUDA_", "PYTHON", "OMP_", "MKL_", "SLURM_", "CI", "GITHUB_", "VIRTUAL_ENV", "CONDA_")


def _git(*args: str, cwd: str | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode("utf-8", "replace")


def git_context(cwd: str | None = None) -> dict[str, Any] | None:
    """Commit, branch, remote, and the uncommitted diff (capped at 1 MiB), or None outside git."""
    status = _git("status", "--porcelain=v2", "--branch", "--untracked-files=no", cwd=cwd)
    if status is None:
        return None
    info: dict[str, Any] = {"commit": None, "branch": None, "dirty": False}
    dirty_paths: list[str] = []
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            info["commit"] = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            info["branch"] = None if head == "(detached)" else head
        elif not line.startswith("#"):
            info["dirty"] = True
            dirty_paths.append(_status_path(line))
    location = _git_location(cwd or os.getcwd())
    info.update(location)
    if info["dirty"] and info["commit"]:
        info.update(_git_diff(cwd, location.get("root"), status, dirty_paths))
    return info


def _status_path(line: str) -> str:
    """The path a ``git status --porcelain=v2`` entry is about."""
    if line.startswith("1 "):
        return line.split(" ", 8)[-1]
    if line.startswith("2 "):
        return line.split(" ", 9)[-1].split("\t", 1)[0]
    if line.startswith("u "):
        return line.split(" ", 10)[-1]
    return line


_diff_cache: dict[tuple[Any, ...], dict[str, Any]] = {}


def _git_diff(cwd: str | None, root: str | None, status: str, paths: list[str]) -> dict[str, Any]:
    """``git diff HEAD``, reused while the status and every changed file's size and mtime stay the same.

    The status names the changed files and their HEAD/index blobs; a file edited
    again changes its mtime. So consecutive runs from unchanged code (a loop of
    short runs, a sweep) pay for one ``git status``, not also for the diff.
    """
    stats: list[tuple[str, int | None, int | None]] = []
    for path in paths:
        try:
            st = os.stat(os.path.join(root or cwd or ".", path))
            stats.append((path, st.st_mtime_ns, st.st_size))
        except OSError:
            stats.append((path, None, None))
    key = (cwd, status, tuple(stats))
    cached = _diff_cache.get(key)
    if cached is not None:
        return cached
    diff = _git("diff", "HEAD", "--no-color", "--no-ext-diff", cwd=cwd) or ""
    out: dict[str, Any] = {}
    if len(diff.encode()) > MAX_DIFF_BYTES:
        out["diff_truncated"] = True
        diff = diff.encode()[:MAX_DIFF_BYTES].decode("utf-8", "ignore")
    out["diff"] = diff
    if len(_diff_cache) > 32:
        _diff_cache.clear()
    _diff_cache[key] = out
    return out


@functools.lru_cache(maxsize=16)
def _git_location(cwd: str) -> dict[str, str]:
    """Repository root and origin URL: they do not change while a process runs."""
    from mlops_sdk.redact import redact_uri

    out: dict[str, str] = {}
    top = _git("rev-parse", "--show-toplevel", cwd=cwd)
    if top:
        out["root"] = top.strip()
    remote = _git("config", "--get", "remote.origin.url", cwd=cwd)
    if remote:
        out["remote"] = redact_uri(remote.strip())
    return out


@functools.lru_cache(maxsize=1)
def packages() -> dict[str, str]:
    """Installed distributions and their versions (once per process)."""
    from importlib.metadata import distributions

    out: dict[str, str] = {}
    for dist in distributions():
        meta = dist.metadata  # parsed once: dist.version would read and parse METADATA again
        name = meta["Name"]
        if name:
            out[name] = meta["Version"]
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


@functools.lru_cache(maxsize=1)
def python_context() -> dict[str, Any]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
    }


@functools.lru_cache(maxsize=1)
def platform_context() -> dict[str, Any]:
    return {
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
    }


def command_context() -> dict[str, Any]:
    # orig_argv keeps what argv loses (the interpreter, -m, -X options): what reproduction re-runs.
    return {
        "argv": redact_argv(sys.argv),
        "orig_argv": redact_argv(list(getattr(sys, "orig_argv", sys.argv))),
        "cwd": os.getcwd(),
        "pid": os.getpid(),
    }


def env_context() -> dict[str, str]:
    """Environment variables that shape a run (CUDA, threads, CI…), secrets redacted."""
    picked = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
    return dict(sorted(redact_mapping(picked).items()))
