"""The core's conformance suites, run against ``s3://`` on a moto server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlops_sdk.manifest import FileEntry, Manifest
from mlops_sdk.plugins import create_backend
from mlops_sdk.storage.cas import CasDatasetStore
from mlops_sdk.storage.datasets import DatasetStore
from mlops_sdk.testing.dataset_store_conformance import DatasetStoreConformance
from mlops_sdk.testing.storage_conformance import StorageConformance

from mlops_sdk_s3.storage import S3Storage


class TestS3Storage(StorageConformance):
    @pytest.fixture
    def storage(self, s3_uri: str) -> Iterator[S3Storage]:
        st = create_backend("storage", s3_uri)
        assert isinstance(st, S3Storage)
        yield st
        st.close()


class TestS3DatasetStore(DatasetStoreConformance):
    """The default content-addressed store, through the generic (remote) path."""

    @pytest.fixture
    def dataset_store(self, s3_uri: str, s3: Any, tmp_path: Path) -> Iterator[DatasetStore]:
        st = create_backend("storage", s3_uri)
        self.s3 = s3
        self.st = st
        store = st.dataset_store(tmp_path / "state")
        assert isinstance(store, CasDatasetStore)
        yield store
        store.close()

    def _object(self, store: DatasetStore, entry: FileEntry) -> str:
        assert isinstance(store, CasDatasetStore)
        return self.st._key(store.objects.key(entry.digest))

    def corrupt(self, store: DatasetStore, manifest: Manifest, entry: FileEntry) -> None:
        key = self._object(store, entry)
        data = self.s3.get_object(Bucket=self.st.bucket, Key=key)["Body"].read()
        self.s3.put_object(Bucket=self.st.bucket, Key=key, Body=b"corrupted!" + data[10:])

    def remove(self, store: DatasetStore, manifest: Manifest, entry: FileEntry) -> None:
        self.s3.delete_object(Bucket=self.st.bucket, Key=self._object(store, entry))
