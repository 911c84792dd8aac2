"""Faults between the plugin and the SageMaker API: throttling (retried), the server down (clear error, then it
recovers), refused credentials (an error naming the backend). Real HTTP through FaultProxy to moto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_jobs
import mlops_sdk
import pytest
from aws_testutil import ROLE
from mlops_sdk.errors import AuthenticationError, DeploymentError
from mlops_sdk.job import submit
from mlops_sdk.plugins import create_backend
from mlops_sdk.testing.cloud_servers import MotoServer
from mlops_sdk.testing.fault_proxy import FaultProxy

from mlops_sdk_aws.deployer import SageMakerDeployer

THROTTLED = (
    b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
)


@pytest.fixture
def proxy(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """SageMaker calls go through the proxy; S3 goes straight to moto."""
    with FaultProxy(moto.endpoint_url) as fp:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", fp.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.endpoint_url)
        yield fp


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Any]:
    workspace = mlops_sdk.Workspace.open(tmp_path / "ws")
    yield workspace
    workspace.close()


def test_throttled_calls_are_retried(proxy: FaultProxy, target: str, ws: Any) -> None:
    backend = create_backend("compute", target, root=ws.root)
    proxy.throttle(2, status=400, body=THROTTLED,
                   headers={"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": "ThrottlingException"})
    job = submit(ws, aws_jobs.add, {"a": 1, "b": 2}, {}, experiment="sm", name=None, compute=backend)
    assert proxy.throttled == 2
    assert job.handle.describe()["TrainingJobName"] == job.handle.name
    proxy.throttle(1, status=503)
    assert SageMakerDeployer(target, root=ws.root).list() is not None
    assert proxy.throttled == 3


def test_server_down_is_a_clear_error_then_recovers(
    proxy: FaultProxy, target: str, ws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # give up fast (the default, 8, rides out ~40 s of outage)
    deployer = SageMakerDeployer(target, root=ws.root)
    proxy.go_down()
    with pytest.raises(DeploymentError, match=r"deployer sagemaker://us-east-1: list endpoints"):
        deployer.list()
    proxy.restore()
    assert isinstance(deployer.list(), list)


def test_refused_credentials_name_the_compute_backend(
    target: str, ws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = create_backend("compute", target, root=ws.root)
    job = submit(ws, aws_jobs.add, {"a": 1, "b": 2}, {}, experiment="sm", name=None, compute=backend)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    fresh = create_backend("compute", target, root=ws.root)
    with pytest.raises(AuthenticationError, match=r"compute sagemaker://us-east-1: AWS refused the credentials"):
        fresh.job(job.handle.spec).state()
    assert ROLE in target
