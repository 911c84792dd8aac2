"""The storage interface every blob backend implements.

A storage is a flat key → bytes store. Keys are relative POSIX paths checked by
:func:`mlops_sdk.validation.validate_relpath`; a backend never sees ``..``.

Contract (checked by ``mlops_sdk.testing.conformance``):

* ``put_*`` is atomic: readers see the old object, or none, or the whole new
  one, never a partial object, even if the writer dies mid-write.
* ``get_*``/``open`` of a missing key raises ``ObjectNotFound`` naming the key.
* ``list(prefix)`` yields every key under the prefix, in no particular order,
  and never the backend's own temporary files.
* Errors are :class:`mlops_sdk.errors.MlopsError` subclasses naming the backend.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


class Storage(abc.ABC):
    """A blob store addressed by ``/``-separated keys."""

    uri: str

    @abc.abstractmethod
    def put_file(self, key: str, local_path: str | Path) -> None:
        """Copy a local file to ``key`` atomically (replacing what was there)."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` to ``key`` atomically."""

    @abc.abstractmethod
    def get_file(self, key: str, local_path: str | Path) -> None:
        """Copy ``key`` to a local file (written atomically; parent folders created)."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Read the whole object."""

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Open the object for streaming reads."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object."""

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """Size of the object in bytes."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key that starts with ``prefix`` (a folder prefix ends with ``/``)."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; removing a missing key is not an error."""

    def local_path(self, key: str) -> Path | None:
        """A path on this machine holding the object, when the backend is local (for links)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
