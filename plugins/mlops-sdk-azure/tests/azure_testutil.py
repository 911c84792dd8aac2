"""Shared by the Azure Blob tests (a module of its own: several plugins' ``conftest`` modules share one name)."""

from __future__ import annotations

from typing import Any

from mlops_sdk.testing.cloud_servers import AzuriteServer

#: Retry settings for tests: the same policy as production, with millisecond back-off.
FAST = "retries=3&backoff=0.01"


def blob_client(azurite: AzuriteServer, container: str, name: str) -> Any:
    """A synchronous client for one blob, to inspect or tamper with what the plugin stored."""
    from azure.storage.blob import BlobClient

    return BlobClient.from_connection_string(azurite.connection_string, container, name)


def blob_names(azurite: AzuriteServer, container: str) -> list[str]:
    """Every blob in the container, as the service lists it (no filtering by the plugin)."""
    from azure.storage.blob import ContainerClient

    with ContainerClient.from_connection_string(azurite.connection_string, container) as cc:
        return sorted(b.name for b in cc.list_blobs())
