"""Fixtures: a real Azurite Blob service on 127.0.0.1 and a fresh container per test.

Azurite (Microsoft's Azure Storage emulator, installed from npm into
``.cache/azurite`` by ``scripts/ensure-azurite.sh``) is started once per test
session (per xdist worker) by :class:`mlops_sdk.testing.cloud_servers.AzuriteServer`.
Each test gets its own container, so tests are independent without restarting
the server. Credentials reach the plugin the way they reach it in production:
``AZURE_STORAGE_CONNECTION_STRING`` (Azurite's public development key).

Only the built-in plugins and this one are loaded (``MLOPS_PLUGINS=azure``),
and no ``AZURE_*``/``MLOPS_*`` variable of the developer's shell leaks in.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
from mlops_sdk.testing.cloud_servers import AzuriteServer, start_or_skip
from mlops_sdk.testing.isolation import isolated


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    """Azurite's Blob service; skipped when Azurite is not installed (failed in CI)."""
    with start_or_skip(AzuriteServer.start) as server:
        yield server


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Built-ins and this plugin only; no Azure or mlops settings from the environment."""
    for key in list(os.environ):
        if key.startswith("AZURE_"):
            monkeypatch.delenv(key)
    with isolated(monkeypatch, plugins="azure"):
        yield


@pytest.fixture
def az_env(azurite: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> AzuriteServer:
    """``AZURE_STORAGE_CONNECTION_STRING`` pointing at Azurite."""
    for key, value in azurite.env().items():
        monkeypatch.setenv(key, value)
    return azurite


def new_container(azurite: AzuriteServer, prefix: str = "t") -> str:
    """Create an empty container with a unique name (the emulator starts empty)."""
    from azure.storage.blob import BlobServiceClient

    name = f"{prefix}-{uuid.uuid4().hex[:20]}"
    with BlobServiceClient.from_connection_string(azurite.connection_string) as svc:
        svc.create_container(name)
    return name


@pytest.fixture
def container(az_env: AzuriteServer) -> Iterator[str]:
    """A fresh, empty container, deleted after the test."""
    from azure.storage.blob import BlobServiceClient

    name = new_container(az_env)
    yield name
    with BlobServiceClient.from_connection_string(az_env.connection_string) as svc, contextlib.suppress(Exception):
        svc.delete_container(name)  # (a test may have removed it on purpose)
