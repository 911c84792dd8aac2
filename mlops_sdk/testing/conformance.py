"""Both conformance suites in one place (the name the interface docstrings use)."""

from __future__ import annotations

from mlops_sdk.testing.storage_conformance import StorageConformance
from mlops_sdk.testing.tracking_conformance import TrackingStoreConformance

__all__ = ["StorageConformance", "TrackingStoreConformance"]
