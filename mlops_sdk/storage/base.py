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
import builtins
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

if TYPE_CHECKING:
    from mlops_sdk.storage.datasets import DatasetStore


T = TypeVar("T")
R = TypeVar("R")


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

    # -- batches: optional, with defaults built on the single-key methods ----------------
    #: Concurrent requests a batch may keep in flight. Remote storages spend their time
    #: waiting on round trips, so many small objects go faster with many in flight.
    batch_concurrency: int = 8

    def _batch(self, fn: Callable[[T], R], items: Sequence[T]) -> builtins.list[R]:
        if len(items) <= 1 or self.batch_concurrency <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(min(self.batch_concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` that hold objects.

        One call for many keys, so a remote backend can answer with concurrent
        requests (or one listing) instead of one round trip at a time.
        """
        wanted = builtins.list(dict.fromkeys(keys))
        found: builtins.list[bool] = self._batch(self.exists, wanted)
        return {k for k, ok in zip(wanted, found, strict=True) if ok}

    def put_files(self, items: Sequence[tuple[str, str | Path]]) -> None:
        """``put_file`` for each ``(key, local_path)``, as a batch (each put atomic on its own).

        On an error some of the objects may have been written (each whole);
        the first error is raised once the batch is over.
        """
        self._batch(lambda item: self.put_file(item[0], item[1]), builtins.list(items))

    def get_files(self, items: Sequence[tuple[str, str | Path]]) -> None:
        """``get_file`` for each ``(key, local_path)``, as a batch."""
        self._batch(lambda item: self.get_file(item[0], item[1]), builtins.list(items))

    def modified(self, key: str) -> float | None:
        """When the object was last written (epoch seconds), or None when the backend cannot tell.

        ``mlops gc`` keeps objects younger than its grace period, so an add in
        progress in another process never loses the objects it just wrote.
        """
        return None

    def local_path(self, key: str) -> Path | None:
        """A path on this machine holding the object, when the backend is local (for links)."""
        return None

    def dataset_store(self, state_dir: Path) -> DatasetStore:
        """The store that keeps dataset files for this storage.

        The default keeps them as content-addressed objects in this storage;
        ``state_dir`` is a local folder for per-machine caches (the stat cache).
        A backend with its own notion of data versions (DVC) overrides this.
        """
        from mlops_sdk.storage.cas import CasDatasetStore
        from mlops_sdk.storage.objects import ObjectStore
        from mlops_sdk.storage.statcache import StatCache

        return CasDatasetStore(ObjectStore(self), StatCache(state_dir / "state.db"))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
