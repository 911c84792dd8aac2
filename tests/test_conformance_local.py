"""The shared backend conformance suites, run against the built-in local backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_sdk.storage.base import Storage
from mlops_sdk.storage.fsspec_storage import LocalStorage, open_memory
from mlops_sdk.testing.storage_conformance import StorageConformance
from mlops_sdk.testing.tracking_conformance import TrackingStoreConformance
from mlops_sdk.tracking.base import TrackingStore
from mlops_sdk.tracking.sql import SqlTrackingStore


class TestSqliteTracking(TrackingStoreConformance):
    @pytest.fixture
    def tracking_store(self, tmp_path: Path) -> Iterator[TrackingStore]:
        store = SqlTrackingStore("sqlite:///t.db", root=tmp_path)
        yield store
        store.close()


class TestSqliteMemoryTracking(TrackingStoreConformance):
    @pytest.fixture
    def tracking_store(self) -> Iterator[TrackingStore]:
        store = SqlTrackingStore("sqlite:///:memory:")
        yield store
        store.close()


class TestLocalStorage(StorageConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[Storage]:
        store = LocalStorage(f"file://{tmp_path / 'store'}")
        yield store
        store.close()


class TestMemoryStorage(StorageConformance):
    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        store = open_memory(f"memory://conformance-{uuid.uuid4().hex}")
        yield store
        for key in list(store.list()):  # the memory file system is process-wide
            store.delete(key)
        store.close()


def test_sqlite_store_opened_twice_on_one_file_sees_the_same_data(tmp_path: Path) -> None:
    first = SqlTrackingStore("sqlite:///shared.db", root=tmp_path)
    second = SqlTrackingStore("sqlite:///shared.db", root=tmp_path)
    try:
        a = first.get_or_create_experiment("one")
        assert second.get_or_create_experiment("one").id == a.id
    finally:
        first.close()
        second.close()
