"""Test helpers for plugin authors: the shared backend conformance suites.

Every backend must satisfy the contract written in its interface's docstring
(:mod:`mlops_sdk.tracking.base`, :mod:`mlops_sdk.storage.base`). The suites
here check that contract; a plugin proves it follows it by subclassing the
suite in its own tests and providing one fixture that builds a fresh, empty
backend, the way scikit-learn's ``check_estimator`` is used::

    # plugins/mlops-sdk-s3/tests/test_conformance.py
    import pytest
    from mlops_sdk.testing.postgres import PostgresServer, PostgresUnavailable
    from mlops_sdk.testing.storage_conformance import StorageConformance
    from mlops_sdk_s3 import S3Storage

    class TestS3Storage(StorageConformance):
        @pytest.fixture
        def storage(self, s3_bucket):            # fresh and empty for every test
            store = S3Storage(f"s3://{s3_bucket}/{uuid.uuid4().hex}")
            yield store
            store.close()

    # a tracking store: subclass TrackingStoreConformance, provide `tracking_store`
    from mlops_sdk.testing.tracking_conformance import TrackingStoreConformance

    # a dataset store: subclass DatasetStoreConformance, provide `dataset_store`
    from mlops_sdk.testing.dataset_store_conformance import DatasetStoreConformance

The suites need ``pytest`` and ``hypothesis`` (the ``test`` extra). Their class
names do not start with ``Test``, so pytest collects them only through a
subclass; importing them has no side effects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_sdk.testing.dataset_store_conformance import DatasetStoreConformance
    from mlops_sdk.testing.postgres import PostgresServer, PostgresUnavailable
    from mlops_sdk.testing.storage_conformance import StorageConformance
    from mlops_sdk.testing.tracking_conformance import TrackingStoreConformance

_LAZY = {
    "DatasetStoreConformance": "mlops_sdk.testing.dataset_store_conformance",
    "PostgresServer": "mlops_sdk.testing.postgres",
    "PostgresUnavailable": "mlops_sdk.testing.postgres",
    "StorageConformance": "mlops_sdk.testing.storage_conformance",
    "TrackingStoreConformance": "mlops_sdk.testing.tracking_conformance",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'mlops_sdk.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)


__all__ = ["DatasetStoreConformance", "PostgresServer", "PostgresUnavailable", "StorageConformance", "TrackingStoreConformance"]
