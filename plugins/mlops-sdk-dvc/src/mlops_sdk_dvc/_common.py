"""Helpers shared by the storage and the source: Git, project checks, md5 copies.

Nothing here imports DVC: the project checks look at the file system only, so
opening a ``dvc://`` storage (for run artifacts) stays fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mlops_sdk.errors import BackendError, ConfigError, IntegrityError
from mlops_sdk.storage import links

BUF = 1 << 20
SPOOL_MAX = 32 << 20  # open(): verified content up to this size stays in memory
SETUP_HINT = "run `git init && dvc init` there (and `dvc remote add -d NAME URL` to share the data)"

# [user@]host:path, the scp-like form Git accepts for SSH URLs
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")


def is_url(location: str) -> bool:
    """Whether ``location`` names a remote Git repository rather than a local folder."""
    return "://" in location or bool(_SCP_LIKE.match(location))


# -- Git ------------------------------------------------------------------------------
def git(cwd: Path, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    """Run ``git`` in ``cwd``; a failure becomes a BackendError carrying git's message."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise ConfigError("the dvc storage needs the `git` program on PATH") from exc
    if proc.returncode not in ok:
        detail = (proc.stderr or proc.stdout).strip()
        raise BackendError(f"`git {' '.join(args[:2])}` failed in {cwd} (exit {proc.returncode}): {detail}")
    return proc


def git_toplevel(folder: Path) -> Path | None:
    """The work tree that holds ``folder`` (found by its ``.git``), or None."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def find_project(path: Path, what: str) -> Path:
    """``path`` resolved, checked to be a DVC project inside a Git work tree."""
    folder = path.expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"{what}: {folder} is not a folder; create it, then {SETUP_HINT}")
    has_git = git_toplevel(folder) is not None
    has_dvc = (folder / ".dvc").is_dir()
    if not (has_git and has_dvc):
        missing = " and ".join(n for n, ok in (("a Git repository", has_git), ("a DVC project", has_dvc)) if not ok)
        raise ConfigError(f"{what}: {folder} is not {missing}; {SETUP_HINT}")
    return folder


def ignore_private_folder(root: Path) -> Path:
    """Create ``root/.mlops`` with a ``.gitignore`` that keeps all of it out of Git."""
    private = root / ".mlops"
    private.mkdir(exist_ok=True)
    ignore = private / ".gitignore"
    try:
        lines = ignore.read_text().splitlines()
    except FileNotFoundError:
        lines = None
    if lines is None:
        ignore.write_text("# mlops-sdk: local state, never committed\n*\n")
    elif "*" not in (line.strip() for line in lines):
        with ignore.open("a") as f:
            f.write("\n*\n" if lines and lines[-1].strip() else "*\n")
    return private


# -- hashing and copying --------------------------------------------------------------
def md5_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def copy_hashing(src: BinaryIO, dst: Path) -> tuple[str, int]:
    """Copy an open stream to a new file ``dst``; returns (md5, bytes) of what was read."""
    h = hashlib.md5()
    n = 0
    with open(dst, "wb") as fo:
        while chunk := src.read(BUF):
            h.update(chunk)
            fo.write(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def part_path(target: Path) -> Path:
    """A temporary name next to ``target``, for writing it atomically."""
    return target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.part"


def corrupted(what: str, path: str, expected: str, got: str) -> IntegrityError:
    return IntegrityError(
        f"{what} is corrupted: {path} has md5 {got}, expected {expected}; it was not used. "
        "Remove it and run `dvc fetch` (or `dvc pull`) to get a good copy."
    )


def place_verified(cached: Path, target: Path, md5: str, link: str, what: str) -> None:
    """Put the cache file ``cached`` at ``target`` (atomically), verified against ``md5``.

    ``auto`` reflinks or copies, ``copy``/``reflink`` as named; ``hardlink`` and
    ``symlink`` link to the (read-only) cache file after checking its content.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = part_path(target)
    try:
        if link in ("auto", "copy", "reflink"):
            cloned = False
            if link != "copy":
                try:
                    links.reflink(cached, tmp)
                    cloned = True
                except links.LinkUnsupported:
                    if link == "reflink":
                        raise
                    tmp.unlink(missing_ok=True)
            if cloned:
                got = md5_of(tmp)
            else:
                with open(cached, "rb") as f:
                    got, _ = copy_hashing(f, tmp)
            if got != md5:
                raise corrupted(what, str(cached), md5, got)
            os.chmod(tmp, 0o644)
        else:
            got = md5_of(cached)
            if got != md5:
                raise corrupted(what, str(cached), md5, got)
            links.place(cached, tmp, link)
        os.replace(tmp, target)
    except links.LinkUnsupported as exc:
        raise BackendError(f"cannot check out {what} with link mode {link!r} here: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_verified(stream: BinaryIO, target: Path, md5: str, what: str, origin: str) -> None:
    """Write ``stream`` to ``target`` atomically, only if its md5 is ``md5``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = part_path(target)
    try:
        got, _ = copy_hashing(stream, tmp)
        if got != md5:
            raise corrupted(what, origin, md5, got)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def spool_verified(stream: BinaryIO, md5: str, what: str, origin: str) -> BinaryIO:
    """The whole of ``stream`` in a temporary file, returned only if its md5 is ``md5``."""
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX)  # noqa: SIM115 - returned to the caller
    h = hashlib.md5()
    try:
        while chunk := stream.read(BUF):
            h.update(chunk)
            out.write(chunk)
        if h.hexdigest() != md5:
            raise corrupted(what, origin, md5, h.hexdigest())
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out  # type: ignore[return-value]


def remove_tree(path: Path) -> None:
    """Delete a folder (or file) DVC may have made read-only."""
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    if not path.exists():
        return

    def _writable(func: object, p: str, _exc: object) -> None:
        os.chmod(os.path.dirname(p), 0o755)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(p, 0o644)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)

    shutil.rmtree(path, onerror=_writable)  # onexc= needs Python 3.12


def walk_files(folder: Path) -> Iterator[str]:
    """Every file under ``folder`` as a relative POSIX path (symlinks count as files)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = os.path.relpath(dirpath, folder)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = name if rel == "." else f"{rel}/{name}"
            yield path.replace(os.sep, "/")
