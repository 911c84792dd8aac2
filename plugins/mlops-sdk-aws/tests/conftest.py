"""Fixtures: one moto server per test session (per xdist worker) on 127.0.0.1, in server mode.

The server is moto's own, started by :class:`mlops_sdk_aws.moto_server.SageMakerMotoServer`,
which adds the two SageMaker calls moto lacks (``UpdateEndpoint``,
``StopTrainingJob``) inside the server process; boto3, s3fs and the plugin
talk real HTTP to it, nothing is patched in the test process. Each test gets
a fresh bucket. Only the built-ins, ``s3`` and ``aws`` plugins load.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from aws_testutil import IMAGE, ROLE, aws
from mlops_sdk.testing.cloud_servers import MotoServer, environ, start_or_skip
from mlops_sdk.testing.isolation import isolated

from mlops_sdk_aws.moto_server import SageMakerMotoServer


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = start_or_skip(SageMakerMotoServer.start)
    with environ(server.env()):
        yield server
    server.close()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, moto: MotoServer) -> Iterator[None]:
    """Built-ins, s3 and aws plugins only; AWS variables at the moto server; no user AWS config."""
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SAGEMAKER"):
        monkeypatch.delenv(key, raising=False)
    for key, value in moto.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    with isolated(monkeypatch, plugins="s3,aws"):
        yield


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    """``s3://<fresh bucket>/ml``."""
    name = f"mlops-{uuid.uuid4().hex[:12]}"
    aws("s3").create_bucket(Bucket=name)
    return f"s3://{name}/ml"


@pytest.fixture
def target(bucket: str) -> str:
    """A complete ``sagemaker://`` URI on the fresh bucket (fast polling for moto)."""
    return f"sagemaker://us-east-1?role={ROLE}&bucket={bucket}&image={IMAGE}&instance_type=ml.m5.large&poll=0.05&timeout=30"
