"""SageMaker deployer against moto in server mode: create, update, roll back, invoke, stop an endpoint; and the
bundle it uploads, unpacked and served for real by `mlops serve` (SageMaker's /ping and /invocations)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mlops_sdk
import pytest
from aws_testutil import IMAGE, ROLE, aws
from mlops_sdk.deploy.local import payload_for
from mlops_sdk.errors import (
    AuthenticationError,
    ConfigError,
    DeploymentError,
    DeploymentNotFound,
    InvalidValue,
    VersionNotFound,
)
from mlops_sdk.testing.cloud_servers import MotoServer, free_port

from mlops_sdk_aws.deployer import SageMakerDeployer


@pytest.fixture(scope="module")
def iris() -> Any:
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True, as_frame=True)


@pytest.fixture
def ws(tmp_path: Path, iris: Any) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    X, y = iris
    workspace = mlops_sdk.Workspace.open(tmp_path / "ws")
    with workspace.experiment("iris").start_run(name="lr") as run:
        run.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris-clf", input_example=X[:5])
    with workspace.experiment("iris").start_run(name="tree") as run:
        run.log_model(DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y), "iris-clf", input_example=X[:5])
    yield workspace
    workspace.close()


def _seed(moto: MotoServer, body: Any) -> None:
    """Queue what moto's InvokeEndpoint answers next (moto's API for canned endpoint results)."""
    payload = {"results": [{"Body": json.dumps(body), "ContentType": "application/json"}]}
    req = urllib.request.Request(
        f"{moto.endpoint_url}/moto-api/static/sagemaker/endpoint-results", data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    urllib.request.urlopen(req, timeout=10).close()


def _bundle(url: str) -> bytes:
    parts = urlsplit(url)
    return bytes(aws("s3").get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))["Body"].read())


def _config_in_use(name: str) -> str:
    endpoint = aws("sagemaker").describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService"
    return str(endpoint["EndpointConfigName"])


def test_create_update_rollback_predict_stop(ws: Any, target: str, bucket: str, moto: MotoServer, iris: Any) -> None:
    X, _ = iris
    model = ws.model("iris-clf")
    mv1, mv2 = model.version(1), model.version(2)
    dep = ws.deploy(mv1, name="iris-api", target=target)
    sm = aws("sagemaker")

    # created: endpoint InService on a configuration of v1, model.tar.gz in S3 holding the model bundle
    first = _config_in_use("iris-api")
    assert first.startswith("iris-api-v1-")
    config = sm.describe_endpoint_config(EndpointConfigName=first)
    variant = config["ProductionVariants"][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"], variant["VariantName"]) == ("ml.m5.large", 1, "AllTraffic")
    described = sm.describe_model(ModelName=variant["ModelName"])
    assert described["ExecutionRoleArn"] == ROLE
    container = described["PrimaryContainer"]
    assert container["Image"] == IMAGE
    assert container["ModelDataUrl"] == f"{bucket}/sagemaker/iris-api/iris-clf-1/model.tar.gz"
    assert container["Environment"]["MLOPS_MODEL"] == "iris-clf@1"
    with tarfile.open(fileobj=io.BytesIO(_bundle(container["ModelDataUrl"]))) as tar:
        names = set(tar.getnames())
    assert {"Dockerfile", "requirements.txt", "model/mlops.toml", "model/.mlops/tracking.db"} <= names
    info = dep.info()
    assert (info.model, info.version, info.status, info.previous_versions) == ("iris-clf", 1, "running", ())
    assert info.url == "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/iris-api/invocations"

    # update: a new configuration serves v2
    dep.update(mv2)
    second = _config_in_use("iris-api")
    assert second.startswith("iris-api-v2-") and second != first
    info = dep.info()
    assert (info.version, info.previous_versions) == (2, (1,))
    assert _bundle(f"{bucket}/sagemaker/iris-api/iris-clf-2/model.tar.gz")

    # rollback: the first configuration serves again
    dep.rollback()
    assert _config_in_use("iris-api") == first
    assert dep.version == 1 and dep.info().previous_versions == ()
    with pytest.raises(DeploymentError, match="no previous version"):
        dep.rollback()

    # any process manages the same deployment: state lives in SageMaker
    again = SageMakerDeployer(target, root=ws.root)
    assert again.status("iris-api").version == 1
    assert [d.name for d in ws.deployments(target)] == ["iris-api"]
    assert ws.get_deployment("iris-api", target).version == 1

    # predict: InvokeEndpoint; moto answers what we seed (the model's own predictions)
    expected = [int(v) for v in mv1.predict(X.iloc[:3])]
    _seed(moto, {"predictions": expected})
    assert dep.predict(X.iloc[:3]) == expected

    # stop: endpoint, configurations and models are gone; stopping again is fine
    dep.stop()
    with pytest.raises(sm.exceptions.ClientError):
        sm.describe_endpoint(EndpointName="iris-api")
    assert not [c for c in sm.list_endpoint_configs()["EndpointConfigs"] if c["EndpointConfigName"].startswith("iris-api-")]
    assert not [m for m in sm.list_models()["Models"] if m["ModelName"].startswith("iris-api-")]
    dep.stop()
    with pytest.raises(DeploymentNotFound):
        ws.get_deployment("iris-api", target)


def test_failed_update_keeps_the_old_configuration(ws: Any, target: str) -> None:
    dep = ws.deploy("iris-clf@1", name="keep-api", target=target, config={"env": {"LOG_LEVEL": "debug"}})
    first = _config_in_use("keep-api")
    deployer = dep.deployer
    with pytest.raises(VersionNotFound):  # no version 9: nothing is created
        deployer.update("keep-api", "models:/iris-clf/9")
    with pytest.raises(DeploymentError, match="not 'other-model'"):
        deployer.update("keep-api", "models:/other-model/1")
    assert _config_in_use("keep-api") == first
    configs = [c["EndpointConfigName"] for c in aws("sagemaker").list_endpoint_configs()["EndpointConfigs"]]
    assert [c for c in configs if c.startswith("keep-api-")] == [first]
    dep.update("iris-clf@2")  # a good update keeps the deploy-time environment
    sm = aws("sagemaker")
    variant = sm.describe_endpoint_config(EndpointConfigName=_config_in_use("keep-api"))["ProductionVariants"][0]
    env = sm.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]["Environment"]
    assert env == {"LOG_LEVEL": "debug", "MLOPS_MODEL": "iris-clf@2", "MLOPS_MODEL_DIR": "/opt/ml/model/model"}
    dep.stop()


def test_existing_endpoint_is_not_overwritten(ws: Any, target: str) -> None:
    ws.deploy("iris-clf@1", name="twice-api", target=target)
    with pytest.raises(DeploymentError, match="already exists"):
        ws.deploy("iris-clf@2", name="twice-api", target=target)
    assert ws.get_deployment("twice-api", target).version == 1
    ws.get_deployment("twice-api", target).stop()


def test_logs_come_from_cloudwatch(ws: Any, target: str) -> None:
    dep = ws.deploy("iris-clf@1", name="logs-api", target=target)
    assert dep.logs() == ""
    logs = aws("logs")
    group = "/aws/sagemaker/Endpoints/logs-api"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="AllTraffic/i-0abc")
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName="AllTraffic/i-0abc", logEvents=[
        {"timestamp": now + i, "message": f"line {i}"} for i in range(5)
    ])
    assert dep.logs(tail=2) == "line 3\nline 4"
    dep.stop()


def test_bad_names_and_settings_are_refused(ws: Any, target: str, bucket: str) -> None:
    deployer = SageMakerDeployer(target, root=ws.root)
    with pytest.raises(InvalidValue, match="SageMaker name"):
        deployer.deploy("bad_name", "models:/iris-clf/1")
    with pytest.raises(InvalidValue, match="SageMaker name"):
        deployer.deploy("x" * 41, "models:/iris-clf/1")
    with pytest.raises(InvalidValue, match="unknown config"):
        deployer.deploy("ok-api", "models:/iris-clf/1", {"replicas": 2})
    with pytest.raises(InvalidValue, match="instance type"):
        deployer.deploy("ok-api", "models:/iris-clf/1", {"instance_type": "large"})
    with pytest.raises(ConfigError, match="missing role"):
        SageMakerDeployer(f"sagemaker://us-east-1?bucket={bucket}&image={IMAGE}", root=ws.root).deploy(
            "ok-api", "models:/iris-clf/1")
    with pytest.raises(ConfigError, match="no image"):
        SageMakerDeployer(f"sagemaker://us-east-1?role={ROLE}&bucket={bucket}", root=ws.root).deploy(
            "ok-api", "models:/iris-clf/1")
    with pytest.raises(DeploymentNotFound):
        deployer.status("ok-api")
    with pytest.raises(DeploymentNotFound):
        deployer.rollback("ok-api")
    deployer.stop("ok-api")  # nothing to stop: not an error
    names = [e["EndpointName"] for e in aws("sagemaker").list_endpoints()["Endpoints"]]
    assert "ok-api" not in names


def test_refused_credentials_name_the_deployer(target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    deployer = SageMakerDeployer(target, root=tmp_path)
    with pytest.raises(AuthenticationError, match=r"deployer sagemaker://us-east-1.*credentials"):
        deployer.status("iris-api")


def _wait_ping(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise AssertionError("the model server did not answer /ping")


@pytest.mark.slow
def test_bundle_serves_sagemaker_routes(ws: Any, target: str, bucket: str, iris: Any, tmp_path: Path) -> None:
    """What SageMaker does with the bundle: unpack it to /opt/ml/model and run the server on it."""
    X, _ = iris
    dep = ws.deploy("iris-clf@2", name="serve-api", target=target)
    opt_model = tmp_path / "opt_ml_model"
    with tarfile.open(fileobj=io.BytesIO(_bundle(f"{bucket}/sagemaker/serve-api/iris-clf-2/model.tar.gz"))) as tar:
        tar.extractall(opt_model, filter="data")
    dep.stop()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("MLOPS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops_sdk.cli", "--workspace", str(opt_model / "model"), "serve", "iris-clf@2",
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ping(url, proc)
        rows = X.iloc[40:60]
        req = urllib.request.Request(f"{url}/invocations", data=json.dumps(payload_for(rows)).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = json.loads(resp.read())
        assert answer["predictions"] == [int(v) for v in ws.model("iris-clf").version(2).predict(rows)]
    finally:
        proc.terminate()
        proc.wait(20)


def test_alias_deployment_follows_its_alias(ws: Any, target: str) -> None:
    model = ws.model("iris-clf")
    model.version(1).set_alias("production")
    dep = ws.deploy("iris-clf@production", name="alias-api", target=target)
    assert (dep.version, dep.info().alias) == (1, "production")
    model.version(2).set_alias("production")
    dep.update()  # re-resolves the alias: v2
    assert dep.version == 2 and dep.info().previous_versions == (1,)
    dep.update(model.version(1))  # a pinned version: the deployment no longer follows the alias
    assert dep.version == 1 and dep.info().alias is None
    dep.stop()
