"""Fixtures: one moto S3 server per test session (per xdist worker), on 127.0.0.1.

moto runs in server mode as a subprocess: boto3 and s3fs talk real HTTP to it,
nothing is patched in-process. Each test gets a fresh bucket (``s3_uri``).
Only the built-in plugins and this one are loaded (``MLOPS_PLUGINS=s3``), and
the AWS variables point at the server with test credentials.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlops_sdk.testing.cloud_servers import MotoServer, environ, start_or_skip
from mlops_sdk.testing.isolation import isolated

HERE = Path(__file__).resolve().parent
SLOW = {  # > ~5 s each on 2 cores
    "test_random_trees_round_trip",
    "test_random_keys_and_bytes_round_trip",
    "test_model_round_trip_through_a_fresh_workspace",
    "test_dataset_round_trip_through_a_fresh_workspace",
    "test_server_stopping_mid_upload_leaves_nothing_and_the_retry_succeeds",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if getattr(item, "originalname", "") in SLOW and HERE in item.path.parents:  # only this plugin's tests
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = start_or_skip(MotoServer.start)
    with environ(server.env()):
        yield server
    server.close()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, moto: MotoServer) -> Iterator[None]:
    """Built-ins and this plugin only; AWS variables at the moto server; no user AWS config."""
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    for key, value in moto.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    with isolated(monkeypatch, plugins="s3"):
        yield


def client(endpoint_url: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url, region_name=MotoServer.REGION)


@pytest.fixture
def s3(moto: MotoServer) -> Any:
    """A boto3 S3 client for the moto server (to look behind the storage's back)."""
    return client(moto.endpoint_url)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"b-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_uri(bucket: str) -> str:
    """A fresh, empty storage location (bucket and prefix) on the moto server."""
    return f"s3://{bucket}/ws"
