"""Storage on any fsspec file system, and the local-folder storage built on it.

Every fsspec protocol (``file``, ``memory``, and through plugins ``s3``,
``az``, …) gets the same atomic-put discipline: write under a temporary key
that listings skip, then move it into place. Local folders move with
``os.replace``, which is atomic on POSIX.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from mlops_sdk.errors import BackendError, ObjectNotFound
from mlops_sdk.storage.base import Storage
from mlops_sdk.validation import validate_relpath

TMP_PREFIX = ".tmp"
#: Requests a batch (``exists_many``, ``put_files``, ``get_files``) keeps in flight on an async (remote) file system.
REMOTE_BATCH_CONCURRENCY = 32


class FsspecStorage(Storage):
    """A storage rooted at a folder of an fsspec file system."""

    def __init__(self, fs: Any, root: str, uri: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.uri = uri
        if getattr(fs, "async_impl", False):
            # a remote object store (s3fs, adlfs, gcsfs...): its calls wait on round trips, which
            # overlap on the file system's event loop, so batches keep many of them in flight
            self.batch_concurrency = REMOTE_BATCH_CONCURRENCY

    def _path(self, key: str) -> str:
        validate_relpath("storage key", key)
        return f"{self.root}/{key}"

    def _missing(self, key: str) -> ObjectNotFound:
        return ObjectNotFound(f"no object {key!r} in storage {self.uri}")

    def put_bytes(self, key: str, data: bytes) -> None:
        final = self._path(key)
        tmp = f"{self.root}/{TMP_PREFIX}/{uuid.uuid4().hex}"
        try:
            self.fs.pipe_file(tmp, data)
            self._move(tmp, final)
        except Exception as exc:
            self._cleanup(tmp)
            raise BackendError(f"storage {self.uri}: could not write {key!r}: {exc}") from exc

    def put_file(self, key: str, local_path: str | Path) -> None:
        final = self._path(key)
        tmp = f"{self.root}/{TMP_PREFIX}/{uuid.uuid4().hex}"
        try:
            self.fs.put_file(str(local_path), tmp)
            self._move(tmp, final)
        except FileNotFoundError as exc:
            self._cleanup(tmp)
            raise ObjectNotFound(f"local file {str(local_path)!r} does not exist") from exc
        except Exception as exc:
            self._cleanup(tmp)
            raise BackendError(f"storage {self.uri}: could not write {key!r}: {exc}") from exc

    def _move(self, tmp: str, final: str) -> None:
        # fs.mv would move *into* ``final`` when other keys sit under ``final/``, leaving a stray key
        if self.fs.isdir(final):
            raise IsADirectoryError(f"other keys are stored under {final!r}/")
        self.fs.mv(tmp, final)

    def _cleanup(self, tmp: str) -> None:
        with contextlib.suppress(Exception):
            self.fs.rm_file(tmp)

    def get_bytes(self, key: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._path(key)))
        except FileNotFoundError as exc:
            raise self._missing(key) from exc

    def get_file(self, key: str, local_path: str | Path) -> None:
        dest = Path(local_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        try:
            self.fs.get_file(self._path(key), tmp)
            os.replace(tmp, dest)
        except FileNotFoundError as exc:
            raise self._missing(key) from exc
        except OSError as exc:
            if not self.exists(key):  # a folder of other keys is not an object
                raise self._missing(key) from exc
            raise BackendError(f"storage {self.uri}: could not read {key!r} into {dest}: {exc}") from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def open(self, key: str) -> BinaryIO:
        try:
            return self.fs.open(self._path(key), "rb")  # type: ignore[no-any-return]
        except FileNotFoundError as exc:
            raise self._missing(key) from exc

    def exists(self, key: str) -> bool:
        return bool(self.fs.isfile(self._path(key)))

    def size(self, key: str) -> int:
        try:
            info = self.fs.info(self._path(key))
        except FileNotFoundError as exc:
            raise self._missing(key) from exc
        if info.get("type") != "file":  # a folder of other keys is not an object
            raise self._missing(key)
        return int(info["size"])

    def list(self, prefix: str = "") -> Iterator[str]:
        # list only the folder the prefix lies in (``objects/`` of a big workspace, not all of it)
        folder = f"{self.root}/{prefix.rsplit('/', 1)[0]}" if "/" in prefix else self.root
        try:
            found = self.fs.find(folder, withdirs=False)
        except FileNotFoundError:
            return
        base = str(self.fs._strip_protocol(self.root)).rstrip("/") + "/"
        for path in found:
            if not path.startswith(base):
                continue
            key = path[len(base):]
            if key.startswith(f"{TMP_PREFIX}/") or not key.startswith(prefix):
                continue
            yield key

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))

    def modified(self, key: str) -> float | None:
        try:
            info = self.fs.info(self._path(key))
        except (FileNotFoundError, OSError):
            return None
        for field in ("mtime", "LastModified", "last_modified", "created"):
            value = info.get(field)
            if isinstance(value, int | float):
                return float(value)
            if hasattr(value, "timestamp"):
                return float(value.timestamp())
        return None


class LocalStorage(FsspecStorage):
    """Blobs in a local folder (the embedded default, ``file://.mlops/store``)."""

    def __init__(self, uri: str, *, root: Path | str = ".") -> None:
        from fsspec.implementations.local import LocalFileSystem

        rest = uri.split("://", 1)[1] if "://" in uri else uri
        path = Path(rest)
        folder = (path if path.is_absolute() else Path(root) / path).resolve()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / TMP_PREFIX).mkdir(exist_ok=True)
        except OSError as exc:
            raise BackendError(f"storage {uri}: cannot create folder {folder}: {exc}") from exc
        self.folder = folder
        super().__init__(LocalFileSystem(), str(folder), f"file://{folder}")

    def _tmp(self) -> Path:
        return self.folder / TMP_PREFIX / uuid.uuid4().hex

    def _final(self, key: str) -> Path:
        final = Path(self._path(key))
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.is_dir():  # an empty folder left behind by deleted keys is no object: reuse the name
            with contextlib.suppress(OSError):
                final.rmdir()
        return final

    def _place(self, tmp: Path, key: str) -> None:
        """Move a complete temporary file to ``key``: the atomic step of every put."""
        try:
            try:
                os.replace(tmp, self._final(key))
            except FileNotFoundError:  # a delete pruned the empty folder meanwhile: make it again
                os.replace(tmp, self._final(key))
        except OSError as exc:  # e.g. other keys are stored under key/, or key's folder is a key
            tmp.unlink(missing_ok=True)
            raise BackendError(f"storage {self.uri}: could not write {key!r}: {exc}") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        self._path(key)
        tmp = self._tmp()
        try:
            with open(tmp, "wb") as f:
                f.write(data)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise BackendError(f"storage {self.uri}: could not write {key!r}: {exc}") from exc
        self._place(tmp, key)

    def put_file(self, key: str, local_path: str | Path) -> None:
        self._path(key)
        tmp = self._tmp()
        try:
            shutil.copyfile(local_path, tmp)
        except FileNotFoundError as exc:
            tmp.unlink(missing_ok=True)
            raise ObjectNotFound(f"local file {str(local_path)!r} does not exist") from exc
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise BackendError(f"storage {self.uri}: could not write {key!r}: {exc}") from exc
        self._place(tmp, key)

    def get_bytes(self, key: str) -> bytes:
        try:
            return Path(self._path(key)).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise self._missing(key) from exc

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise self._missing(key) from exc

    def exists(self, key: str) -> bool:
        return Path(self._path(key)).is_file()

    def size(self, key: str) -> int:
        path = Path(self._path(key))
        if not path.is_file():  # missing, or a folder of other keys
            raise self._missing(key)
        try:
            return path.stat().st_size
        except FileNotFoundError as exc:
            raise self._missing(key) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.folder):
            rel_dir = os.path.relpath(dirpath, self.folder)
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d != TMP_PREFIX]
                rel_dir = ""
            for name in filenames:
                key = f"{rel_dir}/{name}" if rel_dir else name
                key = key.replace(os.sep, "/")
                if key.startswith(prefix):
                    yield key

    def delete(self, key: str) -> None:
        path = Path(self._path(key))
        if path.is_dir():  # a folder of other keys is not an object: nothing to delete
            return
        path.unlink(missing_ok=True)
        parent = path.parent  # drop the folders this leaves empty, so their names can be keys again
        while parent != self.folder and parent.is_relative_to(self.folder):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def modified(self, key: str) -> float | None:
        try:
            return os.stat(self._path(key)).st_mtime
        except OSError:
            return None

    def local_path(self, key: str) -> Path | None:
        path = Path(self._path(key))
        return path if path.is_file() else None


def open_local(uri: str, *, root: Path | str = ".") -> LocalStorage:
    """Factory registered for the ``file`` scheme."""
    return LocalStorage(uri, root=root)


class MemoryStorage(FsspecStorage):
    """fsspec's in-memory file system, read through copies.

    Its ``open`` hands every reader the same file object, so two threads
    reading one key (a batch download of two files with the same content)
    would move each other's position and read wrong bytes. Reads here take a
    copy of the object's bytes instead.
    """

    def _read(self, key: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._path(key)))
        except FileNotFoundError as exc:
            raise self._missing(key) from exc

    def get_file(self, key: str, local_path: str | Path) -> None:
        data = self._read(key)
        dest = Path(local_path)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, dest)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as exc:
            raise BackendError(f"storage {self.uri}: could not read {key!r} into {dest}: {exc}") from exc

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self._read(key))


def open_memory(uri: str, *, root: Path | str = ".") -> FsspecStorage:
    """Factory registered for the ``memory`` scheme (one process only: tests, notebooks)."""
    import fsspec

    fs = fsspec.filesystem("memory")
    path = uri.split("://", 1)[1].strip("/") or "mlops"
    return MemoryStorage(fs, f"/{path}", f"memory://{path}")
