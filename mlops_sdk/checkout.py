"""Restoring a version into a folder, exactly, without losing local work.

The destination ends up holding exactly the version's files: missing ones are
written, changed ones replaced, extra ones removed, identical ones left alone
(so checking out the same version again touches nothing). A file is only
replaced or removed when its current content is stored somewhere, that is,
it belongs to some version of the dataset; anything else is a local change,
and the checkout refuses (:class:`~mlops_sdk.errors.CheckoutConflict`), before
touching anything, unless ``force=True``.

The files to write are first materialized (and verified) in a staging folder
inside the destination, so a corrupted or missing object fails the checkout
before anything in the destination changed; then each moves into place with
an atomic rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import attrs

from mlops_sdk.errors import BackendError, CheckoutConflict, InvalidValue
from mlops_sdk.manifest import FileEntry, Manifest
from mlops_sdk.storage.datasets import LINK_MODES, DatasetReader, Progress, SourceFile, no_progress
from mlops_sdk.storage.statcache import StatCache

_SHOW = 10
STAGING_PREFIX = ".mlops-checkout-"


@attrs.frozen
class CheckoutResult:
    """What a checkout changed."""

    dest: Path
    written: int
    removed: int
    unchanged: int


def _existing(dest: Path) -> tuple[dict[str, SourceFile], list[Path]]:
    """Files under ``dest`` by relative path, and the other entries found (links to folders, broken links, pipes…).

    A link to a regular file counts as a file with the content it points at
    (what a ``link="symlink"`` checkout makes), so checking out again finds it unchanged.
    """
    files: dict[str, SourceFile] = {}
    odd: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(dest):
        base = Path(dirpath)
        for name in dirnames:
            if (base / name).is_symlink():
                odd.append(base / name)
        for name in filenames:
            local = base / name
            rel = local.relative_to(dest).as_posix()
            try:
                st = os.stat(local)  # follows a link to the file it points at
            except OSError:  # a broken link
                odd.append(local)
                continue
            if not stat.S_ISREG(st.st_mode):
                odd.append(local)
                continue
            files[rel] = SourceFile(local, rel, st.st_size, st.st_mtime_ns, st.st_ino)
    return files, odd


def _digest(path: Path, algorithm: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def checkout(
    manifest: Manifest,
    reader: DatasetReader,
    dest: Path,
    *,
    known: Collection[str] = (),
    force: bool = False,
    link: str = "auto",
    source: dict[str, Any] | None = None,
    state: StatCache | None = None,
    progress: Progress = no_progress,
) -> CheckoutResult:
    """Make ``dest`` hold exactly ``manifest``'s files.

    ``known`` are digests (of ``manifest.algorithm``) whose content is stored:
    files with that content may be replaced or removed without ``force``.
    """
    if link not in LINK_MODES:
        raise InvalidValue(f"unknown link mode {link!r}; use one of {', '.join(LINK_MODES)}")
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise InvalidValue(f"cannot check out into {dest}: it is a file, not a folder")
    state = state or StatCache(None)
    wanted = manifest.by_path()
    algo = manifest.algorithm
    started_ns = time.time_ns()
    try:
        have, odd = _existing(dest) if dest.exists() else ({}, [])
        cached = state.lookup(algo, [(str(f.local), f.size, f.mtime_ns, f.inode) for f in have.values()])
        digests: dict[str, str] = {}
        fresh = []
        for rel, f in have.items():
            d = cached.get(str(f.local))
            if d is None:
                d = _digest(f.local, algo)
                fresh.append((str(f.local), f.size, f.mtime_ns, f.inode, d))
            digests[rel] = d
    except OSError as exc:
        raise BackendError(f"cannot check out into {dest}: reading what is there failed: {exc}") from exc
    state.store(algo, fresh, started_ns=started_ns)

    safe = set(known) | manifest.digests()
    unchanged = {rel for rel, e in wanted.items() if rel in have and digests[rel] == e.digest and have[rel].size == e.size}
    to_remove = [rel for rel in have if rel not in wanted]  # replaced files are overwritten atomically instead
    changed = [rel for rel in have if rel in wanted and rel not in unchanged]
    conflicts = sorted(rel for rel in to_remove + changed if digests[rel] not in safe)
    # A wanted file whose path is now a folder (or a link to one): its contents go too.
    conflicts += [p.relative_to(dest).as_posix() for p in odd]
    if conflicts and not force:
        shown = ", ".join(conflicts[:_SHOW]) + (f" and {len(conflicts) - _SHOW} more" if len(conflicts) > _SHOW else "")
        raise CheckoutConflict(
            f"checking out into {dest} would overwrite or delete {len(conflicts)} file(s) with local changes "
            f"stored nowhere: {shown}. Add them as a new version first, or pass force=True (--force) to discard them"
        )
    to_write: list[FileEntry] = [e for rel, e in wanted.items() if rel not in unchanged]
    created = not dest.exists()
    staging: Path | None = None
    try:
        dest.mkdir(parents=True, exist_ok=True)
        if to_write:
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest)) if (have or odd) else dest
    except OSError as exc:
        raise BackendError(f"checkout into {dest} failed: {exc}") from exc
    try:
        # 1. Everything to write, verified, inside the destination but apart from its files:
        #    a corrupted or missing object stops the checkout here, the destination as it was.
        if staging is not None and not have and not odd:
            # Nothing of the user's is there: write straight into place; on failure remove what was written.
            staging = None
            try:
                reader.materialize(manifest, to_write, dest, link=link, source=source, progress=progress)
            except BaseException:
                if created:
                    shutil.rmtree(dest, ignore_errors=True)
                else:
                    for e in to_write:
                        with contextlib.suppress(OSError):
                            (dest / e.path).unlink()
                raise
            to_move: list[FileEntry] = []
        else:
            to_move = to_write
        if staging is not None:
            try:
                reader.materialize(manifest, to_write, staging, link=link, source=source, progress=progress)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                if created:
                    shutil.rmtree(dest, ignore_errors=True)
                raise
        # 2. Only now change the destination.
        for p in odd:
            if p.is_symlink() or not p.is_dir():
                p.unlink()
            else:
                shutil.rmtree(p)
        for rel in to_remove:
            (dest / rel).unlink(missing_ok=True)
        for rel in wanted:  # a folder standing where a wanted file goes
            target = dest / rel
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
        for e in to_move:
            assert staging is not None
            target = dest / e.path
            for parent in reversed(Path(e.path).parents):  # a file standing where a wanted folder goes
                if str(parent) != "." and ((dest / parent).is_file() or (dest / parent).is_symlink()):
                    (dest / parent).unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / e.path, target)
        if staging is not None:
            shutil.rmtree(staging)
        _prune_empty(dest, keep={str(Path(rel).parent) for rel in wanted})
    except OSError as exc:
        raise BackendError(f"checkout into {dest} failed: {exc}") from exc
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    written = []
    for e in to_write:
        local = dest / e.path
        st = os.stat(local)
        written.append((str(local), st.st_size, st.st_mtime_ns, st.st_ino, e.digest))
    state.store(algo, written, started_ns=started_ns)
    return CheckoutResult(dest, len(to_write), len(to_remove), len(unchanged))


def _prune_empty(dest: Path, keep: set[str]) -> None:
    """Remove folders left empty under ``dest`` (bottom-up), except those a wanted file needs."""
    if not dest.exists():
        return
    for dirpath, _dirnames, _filenames in os.walk(dest, topdown=False):
        path = Path(dirpath)
        if path == dest:
            continue
        rel = path.relative_to(dest).as_posix()
        if any(k == rel or k.startswith(rel + "/") for k in keep):
            continue
        with contextlib.suppress(OSError):
            path.rmdir()
