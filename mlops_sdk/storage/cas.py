"""The default dataset store: sha256-addressed objects in the workspace's storage.

Every file is stored once, whatever dataset, version or run refers to it.
Adding is proportional to what changed: a stat cache skips re-hashing files
whose size, mtime and inode are unchanged, and objects the previous version
already references are known to be present without asking the storage. On a
local folder, small files are hashed while they are copied (one read), large
ones hashed first and copied only when new; each object appears by an atomic
rename, read-only. On any other (remote) storage, round trips are the cost:
files are hashed locally, the storage is asked once which objects it lacks
(:meth:`ObjectStore.present`: one listing rather than a request per file),
and uploads and checkouts go in batches that the storage runs concurrently
(``Storage.put_files`` / ``get_files``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from mlops_sdk.errors import BackendError, IntegrityError, InvalidValue, ObjectNotFound
from mlops_sdk.manifest import FileEntry, Manifest
from mlops_sdk.storage import links
from mlops_sdk.storage.datasets import (
    LINK_MODES,
    AddResult,
    DatasetStore,
    Progress,
    SourceFile,
    no_progress,
)
from mlops_sdk.storage.fsspec_storage import LocalStorage
from mlops_sdk.storage.objects import ObjectStore
from mlops_sdk.storage.statcache import StatCache

T = TypeVar("T")
R = TypeVar("R")
_BUF = 1 << 20
LARGE_FILE = 64 << 20  # above this, hash first and copy only when the object is new
_WORKERS = min(8, 2 * (os.cpu_count() or 1))
_TMPFILE_OK = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
SMALL_IN_MEMORY = 4 << 20  # up to this, a file is read whole, hashed, and written only when new


def changed_while_adding(src: SourceFile) -> IntegrityError:
    return IntegrityError(f"{src.local} changed while it was being added; nothing was recorded, try again")


def _same_stat(src: SourceFile, st: os.stat_result) -> bool:
    return st.st_size == src.size and st.st_mtime_ns == src.mtime_ns


def _unchanged(src: SourceFile) -> bool:
    """Whether a file still has the size and mtime it was scanned with (a missing file has changed)."""
    try:
        return _same_stat(src, os.stat(src.local))
    except OSError:
        return False


def _open_source(src: SourceFile) -> io.BufferedReader:
    """Open a file being added; a file gone or unreadable since the scan is the caller's error, not the store's."""
    try:
        return open(src.local, "rb")
    except FileNotFoundError as exc:
        raise InvalidValue(f"{src.local} disappeared while it was being added; nothing was recorded") from exc
    except OSError as exc:
        raise InvalidValue(f"cannot read {src.local}: {exc.strerror or exc}; nothing was recorded") from exc


def hash_file(src: SourceFile) -> str:
    """sha256 of a file, refusing one that changes while it is read."""
    with _open_source(src) as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        if not _same_stat(src, os.fstat(f.fileno())):
            raise changed_while_adding(src)
    return digest


class CasDatasetStore(DatasetStore):
    """Dataset versions as manifests of content-addressed objects."""

    algorithm = "sha256"

    def __init__(self, objects: ObjectStore, state: StatCache | None = None) -> None:
        self.objects = objects
        self.state = state or StatCache(None)
        self.uri = objects.storage.uri
        # A local folder gets the fast paths (one-pass copy, links); any other storage the generic one.
        self._folder: Path | None = objects.storage.folder if isinstance(objects.storage, LocalStorage) else None

    @property
    def objects_folder(self) -> Path | None:
        """The local folder holding the objects, when the storage is local (what symlinked checkouts point into)."""
        return None if self._folder is None else self._folder / ObjectStore.PREFIX

    # -- adding -------------------------------------------------------------------
    def add(
        self,
        name: str,
        files: Sequence[SourceFile],
        *,
        previous: Manifest | None = None,
        message: str = "",
        progress: Progress = no_progress,
    ) -> AddResult:
        started_ns = time.time_ns()
        if self._folder is not None:  # the temporary folder, should someone have removed it
            (self._folder / ".tmp").mkdir(exist_ok=True)
        cached = self.state.lookup("sha256", [(str(f.local), f.size, f.mtime_ns, f.inode) for f in files])
        present = previous.digests() if previous is not None and previous.algorithm == "sha256" else set()
        if self._folder is None:
            return self._add_generic(files, cached, present, started_ns, progress)
        counters = {"hashed": 0, "stored": 0, "bytes": 0}
        lock = threading.Lock()  # `counters[k] += 1` is not atomic across the pool's threads
        fresh: list[tuple[str, int, int, int, str]] = []

        def one(src: SourceFile) -> FileEntry:
            digest = cached.get(str(src.local))
            if digest is not None and (digest in present or self._have(digest)):
                progress(src.size, 1)
                return FileEntry(src.path, src.size, digest)
            digest, wrote = self._ingest(src)
            with lock:
                counters["hashed"] += 1
                if wrote:
                    counters["stored"] += 1
                    counters["bytes"] += src.size
                fresh.append((str(src.local), src.size, src.mtime_ns, src.inode, digest))
            progress(src.size, 1)
            return FileEntry(src.path, src.size, digest)

        entries = _map_chunked(one, files)
        self.state.store("sha256", fresh, started_ns=started_ns)
        return AddResult(Manifest(entries), None, counters["hashed"], counters["stored"], counters["bytes"])

    def _have(self, digest: str) -> bool:
        """Whether the object is stored. A local object found is touched, so that a
        concurrent ``mlops gc`` sees it as young (inside its grace period) until the
        version that needs it again is recorded."""
        if self._folder is None:
            return self.objects.exists(digest)
        final = self._final_str(digest)
        try:
            os.utime(final)
        except FileNotFoundError:
            return False
        except OSError:
            return os.path.isfile(final)
        return os.path.isfile(final)

    def _ingest(self, src: SourceFile) -> tuple[str, bool]:
        """Hash ``src`` and store it unless present; returns (digest, newly stored). Local folders only:
        other storages add in batches (:meth:`_add_generic`)."""
        if src.size > LARGE_FILE:
            return self._ingest_large(src)
        return self._ingest_small(src)

    def _add_generic(
        self,
        files: Sequence[SourceFile],
        cached: dict[str, str],
        present: set[str],
        started_ns: int,
        progress: Progress,
    ) -> AddResult:
        """Add to a remote storage in batches: hash locally, ask the storage once which
        objects it lacks, upload those in batches (the storage keeps many requests in
        flight), then check that no uploaded file changed meanwhile."""
        known = [cached.get(str(src.local)) for src in files]
        candidates = {d for d in known if d is not None} - present
        have = (self.objects.present(candidates) if candidates else set()) | present
        # a digest from the stat cache whose object is not stored is hashed again before its upload
        todo_idx = [i for i, d in enumerate(known) if d is None or d not in have]
        for i, d in enumerate(known):
            if d is not None and d in have:
                progress(files[i].size, 1)
        hashed = _map_chunked(lambda i: hash_file(files[i]), todo_idx)
        digests: list[str] = [d or "" for d in known]
        for i, d in zip(todo_idx, hashed, strict=True):
            digests[i] = d
        have |= self.objects.present(set(hashed) - have)
        uploads: dict[str, SourceFile] = {}
        for i in todo_idx:
            if digests[i] in have:
                progress(files[i].size, 1)
            else:
                uploads.setdefault(digests[i], files[i])
        # the files whose digest another file of this add uploads
        followers = [i for i in todo_idx if digests[i] not in have and uploads[digests[i]] is not files[i]]
        for batch in _batches(list(uploads.items()), key=lambda item: item[1].size):
            keys = [(self.objects.key(d), src.local) for d, src in batch]
            failure: BaseException | None = None
            try:
                self.objects.storage.put_files(keys)
            except BaseException as exc:  # re-raised below, once the whole batch is checked
                failure = exc
            # Every file of the batch is checked, also when the upload failed part-way: an object
            # uploaded from a file that changed meanwhile may not hold its digest's bytes, so it goes.
            changed = [(digest, src) for digest, src in batch if not _unchanged(src)]
            for digest, _src in changed:
                with contextlib.suppress(Exception):
                    self.objects.storage.delete(self.objects.key(digest))
            if changed:
                raise changed_while_adding(changed[0][1]) from failure
            if isinstance(failure, ObjectNotFound):  # the storage's word for a local file that is gone
                raise InvalidValue(
                    f"{failure}: a file disappeared while it was being added; nothing was recorded"
                ) from failure
            if failure is not None:
                raise failure
            for _digest, src in batch:
                progress(src.size, 1)
        for i in followers:
            progress(files[i].size, 1)
        fresh = [(str(files[i].local), files[i].size, files[i].mtime_ns, files[i].inode, digests[i]) for i in todo_idx]
        self.state.store("sha256", fresh, started_ns=started_ns)
        entries = [FileEntry(src.path, src.size, d) for src, d in zip(files, digests, strict=True)]
        stored_bytes = sum(src.size for src in uploads.values())
        return AddResult(Manifest(entries), None, len(todo_idx), len(uploads), stored_bytes)

    def _tmp(self) -> Path:
        assert self._folder is not None
        return self._folder / ".tmp" / uuid.uuid4().hex

    def _final(self, digest: str) -> Path:
        return Path(self._final_str(digest))

    def _final_str(self, digest: str) -> str:
        """The object's path. ``digest`` is one this store computed or read from a checked manifest."""
        assert self._folder is not None
        base = self.__dict__.get("_objects_dir")
        if base is None:
            base = self.__dict__["_objects_dir"] = str(self._folder / self.objects.PREFIX)
        return f"{base}/{digest[:2]}/{digest[2:]}"

    def _publish(self, tmp: Path, digest: str) -> bool:
        final = self._final(digest)
        if self._have(digest):
            tmp.unlink(missing_ok=True)
            return False
        os.chmod(tmp, 0o444)
        try:
            os.replace(tmp, final)
        except FileNotFoundError:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        return True

    def _ingest_small(self, src: SourceFile) -> tuple[str, bool]:
        if src.size <= SMALL_IN_MEMORY:
            return self._ingest_in_memory(src)
        return self._ingest_stream(src)

    def _ingest_in_memory(self, src: SourceFile) -> tuple[str, bool]:
        """Read, check, hash; then write only a new object, from a temp file in its own folder
        (a same-folder rename: no file-system-wide rename lock), created read-only (no chmod)."""
        try:
            fd = os.open(src.local, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise InvalidValue(f"{src.local} disappeared while it was being added; nothing was recorded") from exc
        except OSError as exc:
            raise InvalidValue(f"cannot read {src.local}: {exc.strerror or exc}; nothing was recorded") from exc
        try:
            data = os.read(fd, src.size + 1)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if len(data) != src.size or not _same_stat(src, st):
            raise changed_while_adding(src)
        digest = hashlib.sha256(data).hexdigest()
        if self._have(digest):
            return digest, False
        final = self._final(digest)
        if _TMPFILE_OK:
            stored = self._write_unnamed(final, data)
            if stored is not None:
                return digest, stored
        tmp = final.parent / f".{uuid.uuid4().hex}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            try:
                fd = os.open(tmp, flags, 0o444)
            except FileNotFoundError:
                final.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, flags, 0o444)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise self._write_error(src, exc) from exc
        return digest, True

    def _write_unnamed(self, final: Path, data: bytes) -> bool | None:
        """Linux: write an unnamed file (O_TMPFILE) in the object's folder and link it in place;
        None where the file system cannot (then the named temp file + rename is used)."""
        global _TMPFILE_OK
        flags = os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC
        try:
            for attempt in range(3):
                try:
                    fd = os.open(final.parent, flags, 0o444)
                    break
                except FileNotFoundError:
                    if attempt == 2:
                        raise
                    final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                _TMPFILE_OK = False
                return None
            raise
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            try:
                # linkat(AT_SYMLINK_FOLLOW) on the /proc link: Python calls linkat (not link) when given a dir fd
                os.link(str(fd), final, src_dir_fd=_proc_fd())
            except FileExistsError:
                return False  # stored meanwhile by another add
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.EPERM, errno.EXDEV):
                    _TMPFILE_OK = False
                    return None
                raise
            return True
        finally:
            os.close(fd)

    def _ingest_stream(self, src: SourceFile) -> tuple[str, bool]:
        tmp = self._tmp()
        h = hashlib.sha256()
        fi = _open_source(src)
        try:
            with fi, open(tmp, "wb") as fo:
                n = 0
                while chunk := fi.read(_BUF):
                    h.update(chunk)
                    fo.write(chunk)
                    n += len(chunk)
                if n != src.size or not _same_stat(src, os.fstat(fi.fileno())):
                    raise changed_while_adding(src)
            return (digest := h.hexdigest()), self._publish(tmp, digest)
        except OSError as exc:
            raise self._write_error(src, exc) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _ingest_large(self, src: SourceFile) -> tuple[str, bool]:
        digest = hash_file(src)
        if self._have(digest):
            return digest, False
        tmp = self._tmp()
        try:
            try:
                links.reflink(src.local, tmp)
            except links.LinkUnsupported:
                shutil.copyfile(src.local, tmp)  # sendfile: in the kernel, no Python buffers
            try:
                st = os.stat(src.local)
            except FileNotFoundError:
                raise changed_while_adding(src) from None
            if not _same_stat(src, st):
                raise changed_while_adding(src)
            return digest, self._publish(tmp, digest)
        except OSError as exc:
            raise self._write_error(src, exc) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _write_error(self, src: SourceFile, exc: OSError) -> BackendError:
        return BackendError(f"storage {self.uri}: could not store {src.local}: {exc.strerror or exc}; nothing was recorded")

    # -- reading ------------------------------------------------------------------
    def open(self, manifest: Manifest, entry: FileEntry, *, source: dict[str, Any] | None = None) -> BinaryIO:
        if self._folder is None:
            try:
                return self.objects.open(entry.digest)
            except IntegrityError as exc:
                raise IntegrityError(f"file {entry.path!r}: {exc}; run `mlops verify`") from exc
            except ObjectNotFound as exc:
                raise self._missing_object(entry) from exc
        # Local: hash the object as a stream, then hand out the same (read-only) file from its start.
        obj = self._final(entry.digest)
        try:
            f = open(obj, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        except FileNotFoundError as exc:
            raise self._missing_object(entry) from exc
        try:
            if hashlib.file_digest(f, "sha256").hexdigest() != entry.digest:
                raise self._corrupted(obj, entry)
            f.seek(0)
        except BaseException:
            f.close()
            raise
        return f

    def _corrupted(self, obj: Path | str, entry: FileEntry) -> IntegrityError:
        return IntegrityError(
            f"object {obj} (file {entry.path!r}) is corrupted: its content does not match its hash; run `mlops verify`"
        )

    def _missing_object(self, entry: FileEntry) -> ObjectNotFound:
        return ObjectNotFound(f"object {self.objects.key(entry.digest)} of {entry.path!r} is missing from {self.uri}")

    def materialize(
        self,
        manifest: Manifest,
        entries: Sequence[FileEntry],
        dest: Path,
        *,
        link: str = "auto",
        source: dict[str, Any] | None = None,
        progress: Progress = no_progress,
    ) -> None:
        if link not in LINK_MODES:
            raise InvalidValue(f"unknown link mode {link!r}; use one of {', '.join(LINK_MODES)}")

        if self._folder is None:
            self._materialize_generic(entries, dest, progress)
            return
        made: set[Path] = set()
        no_reflink: list[bool] = []

        def one(entry: FileEntry) -> None:
            target = dest / entry.path
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            if self._folder is not None and link in ("auto", "copy") and entry.size <= SMALL_IN_MEMORY and (
                link == "copy" or no_reflink
            ):
                self._place_small(entry, target)
                progress(entry.size, 1)
                return
            if self._folder is None:
                try:
                    self.objects.get_file(entry.digest, target)
                except IntegrityError as exc:
                    raise IntegrityError(f"file {entry.path!r}: {exc}; run `mlops verify`") from exc
                except ObjectNotFound as exc:
                    raise self._missing_object(entry) from exc
            else:
                try:
                    self._place_local(entry, target, link, no_reflink)
                except _ReflinkFailed:
                    self._place_small(entry, target) if entry.size <= SMALL_IN_MEMORY else self._place_local(
                        entry, target, "copy", no_reflink
                    )
            progress(entry.size, 1)

        _map_chunked(one, entries)

    def _materialize_generic(self, entries: Sequence[FileEntry], dest: Path, progress: Progress) -> None:
        """Download in batches (the storage keeps many requests in flight) into temporary
        files beside their targets; each file appears by a rename once its hash is verified."""
        made: set[Path] = set()
        for batch in _batches(list(entries), key=lambda e: e.size):
            items: list[tuple[FileEntry, Path, Path]] = []
            for entry in batch:
                target = dest / entry.path
                if target.parent not in made:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    made.add(target.parent)
                items.append((entry, target, target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.part"))
            # One download per object: files with the same content share it, and a copy
            # is made locally once it is verified.
            unique: dict[str, Path] = {}
            for entry, _, tmp in items:
                unique.setdefault(entry.digest, tmp)
            try:
                try:
                    self.objects.storage.get_files([(self.objects.key(d), tmp) for d, tmp in unique.items()])
                except ObjectNotFound as exc:
                    have = self.objects.present(set(unique))
                    gone = next((e for e in batch if e.digest not in have), None)
                    if gone is not None:
                        raise self._missing_object(gone) from exc
                    raise
                hashes = _map_chunked(lambda item: _hash_path(item[1]), list(unique.items()))
                for digest, got in zip(unique, hashes, strict=True):
                    if got != digest:
                        entry = next(e for e in batch if e.digest == digest)
                        raise IntegrityError(
                            f"file {entry.path!r}: object {self.objects.key(digest)} in {self.uri} is corrupted: "
                            "its content does not match its hash; run `mlops verify`"
                        )
                for entry, _, tmp in items:
                    if tmp != unique[entry.digest]:
                        shutil.copyfile(unique[entry.digest], tmp)
                for entry, target, tmp in items:
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, target)
                    progress(entry.size, 1)
            finally:
                for _, _, tmp in items:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)

    def _place_small(self, entry: FileEntry, target: Path) -> None:
        """Copy a small object: read it whole, verify it, write it under a temp name, rename."""
        obj = self._final(entry.digest)
        try:
            fd = os.open(obj, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise self._missing_object(entry) from exc
        try:
            data = os.read(fd, entry.size + 1)
        finally:
            os.close(fd)
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.digest:
            raise self._corrupted(obj, entry)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _place_local(self, entry: FileEntry, target: Path, link: str, no_reflink: list[bool] | None = None) -> None:
        if link == "auto" and no_reflink:
            link = "copy"
        obj = self._final(entry.digest)
        if not obj.is_file():
            raise self._missing_object(entry)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
        try:
            if link == "auto" and no_reflink is not None:
                try:
                    links.reflink(obj, tmp)
                    digest = _hash_path(obj)
                except links.LinkUnsupported:
                    no_reflink.append(True)  # this file system cannot: plain copies from now on
                    raise _ReflinkFailed() from None
            elif link in ("auto", "copy"):
                digest = _copy_hashing(obj, tmp, try_reflink=link == "auto")
            else:
                links.place(obj, tmp, link)
                digest = _hash_path(obj)
            if digest != entry.digest:
                raise self._corrupted(obj, entry)
            if link in ("auto", "copy", "reflink"):
                os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except links.LinkUnsupported as exc:
            raise BackendError(f"cannot check out {entry.path!r} with link mode {link!r} here: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def missing(self, manifest: Manifest, *, source: dict[str, Any] | None = None) -> list[FileEntry]:
        if self._folder is None:
            have = self.objects.present({e.digest for e in manifest})
            return [e for e in manifest if e.digest not in have]
        return [e for e in manifest if not self.objects.exists(e.digest)]

    def close(self) -> None:
        self.state.close()


class _ReflinkFailed(Exception):
    pass


_PROC_FD: list[int] = []


def _proc_fd() -> int:
    if not _PROC_FD:
        _PROC_FD.append(os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    return _PROC_FD[0]


def _hash_path(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _copy_hashing(src: Path, dst: Path, *, try_reflink: bool) -> str:
    """Copy (or reflink) ``src`` to ``dst`` and return the sha256 of what was read."""
    if try_reflink:
        try:
            links.reflink(src, dst)
            return _hash_path(src)
        except links.LinkUnsupported:
            pass
    h = hashlib.sha256()
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        for chunk in _chunks(fi):
            h.update(chunk)
            fo.write(chunk)
    return h.hexdigest()


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(_BUF):
        yield chunk


#: A batch of remote transfers: at most this many files or bytes, so progress moves and memory stays bounded.
BATCH_FILES = 512
BATCH_BYTES = 256 << 20


def _batches(items: list[T], *, key: Callable[[T], int]) -> Iterator[list[T]]:
    batch: list[T] = []
    size = 0
    for item in items:
        if batch and (len(batch) >= BATCH_FILES or size + key(item) > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += key(item)
    if batch:
        yield batch


def _map_chunked(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(x) for x in items]`` on a thread pool, in order, a chunk of items per task.

    One future per file costs more than copying a 1 KB file; a chunk per task
    keeps the pool's overhead to a few hundred futures whatever the file count.
    """
    if len(items) <= 16:
        return [fn(x) for x in items]
    size = max(16, min(256, len(items) // (_WORKERS * 4) or 1))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    with ThreadPoolExecutor(_WORKERS) as pool:
        done = pool.map(lambda chunk: [fn(x) for x in chunk], chunks)
        return [r for part in done for r in part]
