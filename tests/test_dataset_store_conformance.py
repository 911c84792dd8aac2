"""The dataset-store conformance suite, run against the built-in content-addressed store.

On ``file://`` storage the store takes its local fast paths (one-pass copy,
links, read-only objects); on ``memory://`` it goes through the generic path
any fsspec storage (S3, Azure…) takes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_sdk.manifest import FileEntry, Manifest
from mlops_sdk.storage.cas import CasDatasetStore
from mlops_sdk.storage.datasets import DatasetStore
from mlops_sdk.storage.fsspec_storage import LocalStorage, open_memory
from mlops_sdk.storage.objects import ObjectStore
from mlops_sdk.storage.statcache import StatCache
from mlops_sdk.testing.dataset_store_conformance import DatasetStoreConformance


class _CasHooks(DatasetStoreConformance):
    """Corrupting and removing objects through the store's own storage."""

    def corrupt(self, store: DatasetStore, manifest: Manifest, entry: FileEntry) -> None:
        assert isinstance(store, CasDatasetStore)
        key = store.objects.key(entry.digest)
        local = store.objects.storage.local_path(key)
        if local is not None:  # objects are read-only files: a user with rights can still damage one
            os.chmod(local, 0o644)
            local.write_bytes(b"X" * entry.size)
        else:
            store.objects.storage.put_bytes(key, b"X" * entry.size)

    def remove(self, store: DatasetStore, manifest: Manifest, entry: FileEntry) -> None:
        assert isinstance(store, CasDatasetStore)
        store.objects.storage.delete(store.objects.key(entry.digest))


class TestCasOnLocalFolder(_CasHooks):
    link_modes = ("auto", "copy", "hardlink", "symlink")

    @pytest.fixture
    def dataset_store(self, tmp_path: Path) -> Iterator[DatasetStore]:
        store = CasDatasetStore(
            ObjectStore(LocalStorage(f"file://{tmp_path / 'store'}")), StatCache(tmp_path / "cache" / "state.db")
        )
        yield store
        store.close()


class TestCasOnMemory(_CasHooks):
    link_modes = ("auto", "copy")

    @pytest.fixture
    def dataset_store(self) -> Iterator[DatasetStore]:
        storage = open_memory(f"memory://datasets-{uuid.uuid4().hex}")
        store = CasDatasetStore(ObjectStore(storage))
        yield store
        for key in list(storage.list()):  # the memory file system is process-wide
            storage.delete(key)
        store.close()
