"""The core's conformance suites, run against the ``dvc://`` storage and its dataset store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dvc_testutil import Project
from mlops_sdk.manifest import FileEntry, Manifest
from mlops_sdk.plugins import create_backend
from mlops_sdk.storage.datasets import DatasetStore
from mlops_sdk.testing.dataset_store_conformance import DatasetStoreConformance
from mlops_sdk.testing.storage_conformance import StorageConformance

from mlops_sdk_dvc.storage import DvcDatasetStore, DvcStorage


class TestDvcStorage(StorageConformance):
    """Run artifacts: blobs in ``<repo>/.mlops/store``."""

    @pytest.fixture
    def storage(self, project: Project) -> DvcStorage:
        st = create_backend("storage", f"dvc://{project.root}")
        assert isinstance(st, DvcStorage)
        return st


class TestDvcDatasetStore(DatasetStoreConformance):
    """Dataset versions as DVC-tracked folders, committed, pushed to a local-folder remote."""

    link_modes = ("auto", "copy", "hardlink", "symlink")

    @pytest.fixture
    def dataset_store(self, project: Project, tmp_path: Path) -> Iterator[DvcDatasetStore]:
        self.project = project
        store = DvcStorage(f"dvc://{project.root}").dataset_store(tmp_path / "state")
        yield store
        store.close()

    def _stored(self, entry: FileEntry) -> list[Path]:
        return [p for p in (self.project.cache_file(entry.digest), self.project.remote_file(entry.digest)) if p.exists()]

    def corrupt(self, store: DatasetStore, manifest: Manifest, entry: FileEntry) -> None:
        for path in self._stored(entry):  # the cache and the remote copy: neither may be served
            os.chmod(path, 0o644)
            path.write_bytes(b"corrupted!" + path.read_bytes()[10:])

    def remove(self, store: DatasetStore, manifest: Manifest, entry: FileEntry) -> None:
        for path in self._stored(entry):
            path.unlink()
