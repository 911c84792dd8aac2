"""The core's conformance suites against Azurite: ``az://`` in full, ``abfs://`` for the scheme."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure_testutil import FAST, blob_client
from mlops_sdk.manifest import FileEntry, Manifest
from mlops_sdk.plugins import create_backend
from mlops_sdk.storage.cas import CasDatasetStore
from mlops_sdk.storage.datasets import DatasetStore
from mlops_sdk.testing.cloud_servers import AzuriteServer
from mlops_sdk.testing.dataset_store_conformance import DatasetStoreConformance
from mlops_sdk.testing.storage_conformance import StorageConformance

from mlops_sdk_azure.storage import AzureBlobStorage


def _open(uri: str) -> AzureBlobStorage:
    st = create_backend("storage", uri)  # through the registry, as a workspace opens it
    assert isinstance(st, AzureBlobStorage)
    return st


class TestAzStorage(StorageConformance):
    """``az://container/prefix``: a folder in a fresh container."""

    @pytest.fixture
    def storage(self, container: str) -> Iterator[AzureBlobStorage]:
        st = _open(f"az://{container}/some/prefix?{FAST}")
        yield st
        st.close()


class TestAzStorageWholeContainer(StorageConformance):
    """``az://container``: the container itself, no prefix."""

    @pytest.fixture
    def storage(self, container: str) -> Iterator[AzureBlobStorage]:
        st = _open(f"az://{container}?{FAST}")
        yield st
        st.close()


class TestAbfsStorage(StorageConformance):
    """``abfs://``: adlfs speaks the Blob API for it too (Azurite has no DFS endpoint)."""

    @pytest.fixture
    def storage(self, container: str) -> Iterator[AzureBlobStorage]:
        st = _open(f"abfs://{container}/lake/zone?{FAST}")
        yield st
        st.close()


class TestAzDatasetStore(DatasetStoreConformance):
    """Dataset files as content-addressed blobs (the core's generic remote path)."""

    @pytest.fixture
    def dataset_store(self, az_env: AzuriteServer, container: str, tmp_path: Path) -> Iterator[DatasetStore]:
        self.azurite = az_env
        self.container = container
        st = _open(f"az://{container}/ds?{FAST}")
        store = st.dataset_store(tmp_path / "state")
        yield store
        store.close()
        st.close()

    def _blob(self, store: DatasetStore, entry: FileEntry) -> str:
        assert isinstance(store, CasDatasetStore)
        return f"ds/{store.objects.key(entry.digest)}"

    def corrupt(self, store: DatasetStore, manifest: Manifest, entry: FileEntry) -> None:
        bc = blob_client(self.azurite, self.container, self._blob(store, entry))
        data = bc.download_blob().readall()
        bc.upload_blob(b"corrupted!" + data[10:], overwrite=True)

    def remove(self, store: DatasetStore, manifest: Manifest, entry: FileEntry) -> None:
        blob_client(self.azurite, self.container, self._blob(store, entry)).delete_blob()
