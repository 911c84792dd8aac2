"""Content-addressed objects on top of any :class:`Storage`.

Each file is stored once under ``objects/<first two hex>/<rest of sha256>``,
whatever run, dataset or model refers to it. Reads are verified: bytes whose
hash does not match their key raise :class:`IntegrityError` naming the object,
they are never returned.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, cast

from mlops_sdk.errors import IntegrityError, InvalidValue, ObjectNotFound
from mlops_sdk.storage.base import Storage

ALGORITHM = "sha256"
_CHUNK = 1 << 20
_SPOOL = 8 << 20  # an opened object is kept in memory up to this size, in a temporary file beyond
#: From this many digests on, :meth:`ObjectStore.present` lists the objects instead of asking for each.
LIST_FROM = 64
#: ...but gives up listing (and asks for each) after this many listed keys per wanted digest.
LIST_BUDGET = 200


def file_digest(path: str | Path) -> str:
    """sha256 of a file, streamed."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, ALGORITHM).hexdigest()


def bytes_digest(data: bytes) -> str:
    return hashlib.new(ALGORITHM, data).hexdigest()


_HEX64 = re.compile("[0-9a-f]{64}")


def _check_digest(digest: str) -> str:
    if not isinstance(digest, str) or _HEX64.fullmatch(digest) is None:
        raise InvalidValue(f"not a sha256 hex digest: {digest!r}")
    return digest


class ObjectStore:
    """Deduplicated, verified blobs keyed by their sha256."""

    PREFIX = "objects"

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def key(self, digest: str) -> str:
        _check_digest(digest)
        return f"{self.PREFIX}/{digest[:2]}/{digest[2:]}"

    def put_file(self, path: str | Path) -> tuple[str, int]:
        """Store a file; returns ``(digest, size)``. Existing content is not uploaded again."""
        path = Path(path)
        size = path.stat().st_size
        digest = file_digest(path)
        key = self.key(digest)
        if not self.storage.exists(key):
            self.storage.put_file(key, path)
            if file_digest(path) != digest:
                self.storage.delete(key)
                raise IntegrityError(f"{path} changed while it was being stored; nothing was kept")
        return digest, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        digest = bytes_digest(data)
        key = self.key(digest)
        if not self.storage.exists(key):
            self.storage.put_bytes(key, data)
        return digest, len(data)

    def exists(self, digest: str) -> bool:
        return self.storage.exists(self.key(digest))

    def present(self, digests: Iterable[str]) -> set[str]:
        """The subset of ``digests`` whose objects are stored, in few round trips.

        Many digests: one listing of ``objects/`` (a thousand keys per request
        on object stores) beats a request per object, unless the store holds
        far more objects than are asked about; past a budget of listed keys
        it falls back to :meth:`Storage.exists_many` (concurrent requests).
        """
        wanted = {_check_digest(d) for d in digests}
        if not wanted:
            return set()
        if len(wanted) >= LIST_FROM:
            budget = LIST_BUDGET * len(wanted)
            found: set[str] = set()
            for n, key in enumerate(self.storage.list(f"{self.PREFIX}/")):
                if n >= budget:
                    break
                parts = key.split("/")
                if len(parts) == 3 and parts[1] + parts[2] in wanted:
                    found.add(parts[1] + parts[2])
            else:
                return found
        keys = {self.key(d): d for d in wanted}
        return {keys[k] for k in self.storage.exists_many(keys)}

    def get_bytes(self, digest: str) -> bytes:
        key = self.key(digest)
        data = self.storage.get_bytes(key)
        if bytes_digest(data) != digest:
            raise IntegrityError(f"object {key} in {self.storage.uri} is corrupted: its content does not match its hash")
        return data

    def open(self, digest: str) -> BinaryIO:
        """The object's bytes as a file, verified before it is returned.

        Streamed into a spooled temporary file (in memory up to a few MiB, on
        disk beyond), so a large object never has to fit in memory.
        """
        key = self.key(digest)
        out = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 - returned to the caller
        try:
            h = hashlib.new(ALGORITHM)
            with self.storage.open(key) as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            if h.hexdigest() != digest:
                raise IntegrityError(f"object {key} in {self.storage.uri} is corrupted: its content does not match its hash")
            out.seek(0)
        except BaseException:
            out.close()
            raise
        return cast(BinaryIO, out)

    def get_file(self, digest: str, dest: str | Path) -> None:
        """Copy an object to ``dest``; the file appears only once its hash is verified."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        try:
            self.storage.get_file(self.key(digest), tmp)
            if file_digest(tmp) != digest:
                raise IntegrityError(
                    f"object {self.key(digest)} in {self.storage.uri} is corrupted: "
                    "its content does not match its hash"
                )
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def verify(self, digest: str) -> bool:
        """True when the object exists and its content matches its hash."""
        key = self.key(digest)
        try:
            with self.storage.open(key) as f:
                h = hashlib.new(ALGORITHM)
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        except ObjectNotFound:
            return False
        return h.hexdigest() == digest
