"""The ``azureml://`` deployer (managed online endpoints, blue/green), against the recorded-response transport.

The real ``azure.ai.ml.MLClient`` runs over :class:`RecordedTransport`
(responses shaped after the public REST API, not captured from a live
workspace; see ``azureml_transport.py``), which keeps the endpoints and
deployments it is sent, so a whole deploy → update → rollback → stop works,
and records every request for the assertions below. The models come from a
real mlops workspace: their build context is uploaded to the recorded
datastore's blob container.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlops_sdk as mlops
import pytest
from azureml_transport import (
    ACCOUNT,
    NAMES,
    TARGET,
    FakeCredential,
    Recorded,
    RecordedTransport,
    client_options,
    workspace_transport,
)
from mlops_sdk.errors import (
    AuthenticationError,
    ConfigError,
    DeploymentError,
    DeploymentNotFound,
    InvalidValue,
)

from mlops_sdk_azure.azureml_deployer import AzureMLDeployer

CONTAINER = "azureml-blobstore-11111111-2222-3333-4444-555555555555"
NAME = "churn-api"
IMAGE = "mlopsreg.azurecr.io/iris:{version}"


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An mlops workspace holding two versions of model ``iris``."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("mlops-ws")
    X, y = load_iris(return_X_y=True, as_frame=True)
    with mlops.Workspace.open(root) as ws, ws.experiment("train").start_run() as run:
        run.log_model(LogisticRegression(max_iter=200).fit(X, y), "iris", input_example=X[:3])
        run.log_model(LogisticRegression(max_iter=300, C=0.5).fit(X, y), "iris", input_example=X[:3])
    yield root


@pytest.fixture
def transport() -> RecordedTransport:
    t = workspace_transport()
    t.load("online_endpoint", **NAMES, endpoint=NAME)
    return t


@pytest.fixture
def deployer(transport: RecordedTransport, model_root: Path) -> AzureMLDeployer:
    return AzureMLDeployer(TARGET, root=model_root, env={}, credential=FakeCredential(),
                           client_kwargs=client_options(transport))


def traffic_puts(transport: RecordedTransport) -> list[dict[str, int]]:
    return [r.body["properties"]["traffic"] for r in transport.sent("PUT", f"/onlineEndpoints/{NAME}")
            if r.resource == f"onlineEndpoints/{NAME}" and r.body["properties"]["traffic"]]


def index(transport: RecordedTransport, request: Recorded) -> int:
    return next(i for i, r in enumerate(transport.requests) if r is request)


def test_deploy_creates_endpoint_blue_and_sends_it_all_traffic(
    deployer: AzureMLDeployer, transport: RecordedTransport
) -> None:
    info = deployer.deploy(NAME, "models:/iris/1", {"image": IMAGE, "instance_count": 2, "env": {"WORKERS": 2}})
    assert (info.name, info.model, info.version, info.status) == (NAME, "iris", 1, "running")
    assert info.url == f"https://{NAME}.eastus.inference.ml.azure.com/score"
    assert info.details["traffic"] == {"blue": 100}

    # the model's build context went to the datastore, then the model was registered from there
    uploads = [r for r in transport.requests if r.host == f"{ACCOUNT}.blob.core.windows.net" and r.method == "PUT"]
    uploaded = {r.path.removeprefix(f"/{CONTAINER}/mlops-models/iris/1/") for r in uploads}
    assert {"Dockerfile", "requirements.txt", "model/mlops.toml"} <= uploaded
    (model_put,) = transport.sent("PUT", "/models/iris/versions/1")
    assert model_put.body["properties"]["modelType"] == "custom_model"
    assert model_put.body["properties"]["modelUri"].endswith("/datastores/workspaceblobstore/paths/mlops-models/iris/1/")
    assert index(transport, model_put) > max(index(transport, r) for r in uploads)

    endpoint_put = transport.sent("PUT", f"/onlineEndpoints/{NAME}")[0]
    assert endpoint_put.body["properties"]["authMode"] == "Key"
    assert endpoint_put.body["tags"]["mlops.managed-by"] == "mlops-sdk"
    (blue,) = transport.sent("PUT", f"/onlineEndpoints/{NAME}/deployments/blue")
    props = blue.body["properties"]
    assert props["model"].endswith("/models/iris/versions/1")
    assert props["instanceType"] == "Standard_DS3_v2"
    assert blue.body["sku"]["capacity"] == 2
    assert props["environmentVariables"] == {"WORKERS": "2"}
    (env_put,) = transport.sent("PUT", "/environments/")
    assert env_put.body["properties"]["image"] == "mlopsreg.azurecr.io/iris:1"
    assert env_put.body["properties"]["inferenceConfig"]["scoringRoute"] == {"port": 8080, "path": "/invocations"}
    assert props["environmentId"].endswith(env_put.resource)
    # traffic moved only after blue provisioned
    assert traffic_puts(transport) == [{"blue": 100}]
    last_put = [r for r in transport.sent("PUT", f"/onlineEndpoints/{NAME}") if r.resource == f"onlineEndpoints/{NAME}"][-1]
    assert index(transport, last_put) > index(transport, blue)
    assert all(r.api_version for r in transport.requests if r.host == "management.azure.com")


def test_blue_green_update_rollback_stop(deployer: AzureMLDeployer, transport: RecordedTransport) -> None:
    deployer.deploy(NAME, "models:/iris/1", {"image": IMAGE})
    transport.clear()

    info = deployer.update(NAME, "models:/iris/2")
    assert (info.version, info.previous_versions, info.details["traffic"]) == (2, (1,), {"green": 100, "blue": 0})
    (green,) = transport.sent("PUT", f"/onlineEndpoints/{NAME}/deployments/green")
    assert green.body["properties"]["model"].endswith("/models/iris/versions/2")
    assert green.body["properties"]["instanceType"] == "Standard_DS3_v2"
    assert transport.sent("PUT", f"/onlineEndpoints/{NAME}/deployments/blue") == []
    # the traffic switch comes after green's provisioning was polled to Succeeded and read back
    green_read = [r for r in transport.sent("GET", "/deployments/green") if "api-version" in r.url][-1]
    # the SDK leaves 0% entries out of the PUT (it strips zeroes); a GET lists blue at 0 again
    assert traffic_puts(transport) == [{"green": 100}]
    switch = [r for r in transport.sent("PUT", f"/onlineEndpoints/{NAME}") if r.resource == f"onlineEndpoints/{NAME}"]
    assert index(transport, switch[0]) > index(transport, green_read) > index(transport, green)
    (env_put,) = transport.sent("PUT", "/environments/")
    assert env_put.body["properties"]["image"] == "mlopsreg.azurecr.io/iris:2"  # the template, filled for v2

    transport.clear()
    info = deployer.rollback(NAME)
    assert (info.version, info.details["live"]) == (1, "blue")
    assert traffic_puts(transport) == [{"blue": 100}]
    assert transport.sent("PUT", "/deployments/") == []  # a rollback only moves traffic

    transport.clear()
    deployer.stop(NAME)
    (delete,) = transport.sent("DELETE")
    assert delete.resource == f"onlineEndpoints/{NAME}"
    with pytest.raises(DeploymentNotFound, match=NAME):
        deployer.status(NAME)
    deployer.stop(NAME)  # stopping a stopped deployment is not an error


def test_failed_green_keeps_blue_serving(deployer: AzureMLDeployer, transport: RecordedTransport) -> None:
    deployer.deploy(NAME, "models:/iris/1", {"image": IMAGE})
    transport.fail_provisioning("/deployments/green", "ImagePullFailure: mlopsreg.azurecr.io/iris:2 not found")
    transport.clear()
    with pytest.raises(DeploymentError, match=r"azureml deployer azureml://.*churn-api.*ImagePullFailure"):
        deployer.update(NAME, "models:/iris/2")
    assert transport.sent("PUT", "/deployments/green")  # it was tried
    assert traffic_puts(transport) == []  # traffic never moved
    info = deployer.status(NAME)
    assert (info.version, info.details["traffic"]) == (1, {"blue": 100, "green": 0})
    assert info.details["deployments"]["green"]["provisioning_state"] == "Failed"
    with pytest.raises(DeploymentError, match="not ready to take traffic"):
        deployer.rollback(NAME)  # green never served: nothing to roll back to


UPLOADED = {"image": IMAGE, "model_path": "azureml://datastores/workspaceblobstore/paths/already/iris/1/"}


def test_model_path_skips_the_upload(deployer: AzureMLDeployer, transport: RecordedTransport) -> None:
    deployer.deploy(NAME, "models:/iris/1", UPLOADED)
    assert [r for r in transport.requests if "blob" in r.host] == []
    (model_put,) = transport.sent("PUT", "/models/iris/versions/1")
    assert model_put.body["properties"]["modelUri"].endswith("/datastores/workspaceblobstore/paths/already/iris/1/")


def test_deploying_over_an_existing_endpoint_is_refused(deployer: AzureMLDeployer, transport: RecordedTransport) -> None:
    deployer.deploy(NAME, "models:/iris/1", UPLOADED)
    transport.clear()
    with pytest.raises(DeploymentError, match="already exists"):
        deployer.deploy(NAME, "models:/iris/2", UPLOADED)
    assert transport.sent("PUT") == []  # the live endpoint's traffic was not touched


def test_failed_blue_leaves_nothing(deployer: AzureMLDeployer, transport: RecordedTransport) -> None:
    transport.fail_provisioning("/deployments/blue", "ResourceNotReady: the container exited with code 1")
    with pytest.raises(DeploymentError, match="ResourceNotReady"):
        deployer.deploy(NAME, "models:/iris/1", UPLOADED)
    assert traffic_puts(transport) == []
    (delete,) = transport.sent("DELETE")
    assert delete.resource == f"onlineEndpoints/{NAME}"
    with pytest.raises(DeploymentNotFound):
        deployer.status(NAME)


def test_predict_logs_list(deployer: AzureMLDeployer, transport: RecordedTransport) -> None:
    deployer.deploy(NAME, "models:/iris/1", UPLOADED)
    transport.clear()
    rows = [{"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2},
            {"sepal length (cm)": 6.7, "sepal width (cm)": 3.0, "petal length (cm)": 5.2, "petal width (cm)": 2.3}]
    assert deployer.predict(NAME, rows) == [0, 2]
    (score,) = [r for r in transport.requests if r.path == "/score"]
    assert score.host == f"{NAME}.eastus.inference.ml.azure.com"
    assert score.body == {"dataframe_records": rows}
    assert score.headers.get("has-authorization") == "yes"  # the endpoint key went along (not recorded)
    assert transport.sent("POST", f"/onlineEndpoints/{NAME}/listKeys")

    assert "POST /invocations 200" in deployer.logs(NAME, tail=50)
    (get_logs,) = transport.sent("POST", "/getLogs")
    assert get_logs.resource == f"onlineEndpoints/{NAME}/deployments/blue/getLogs"
    assert get_logs.body == {"tail": 50}

    (info,) = deployer.list()
    assert (info.name, info.model, info.version) == (NAME, "iris", 1)


def test_refused_token_is_an_authentication_error(deployer: AzureMLDeployer, transport: RecordedTransport) -> None:
    transport.load("unauthorized", method="GET", path=f"/onlineEndpoints/{NAME}$")
    with pytest.raises(AuthenticationError, match=r"azureml deployer azureml://.*'churn-api'.*HTTP 401"):
        deployer.status(NAME)


def test_missing_model_version(deployer: AzureMLDeployer, transport: RecordedTransport) -> None:
    with pytest.raises(DeploymentError, match="models:/iris/9 is not in the workspace"):
        deployer.deploy(NAME, "models:/iris/9", {"image": IMAGE})
    assert transport.sent("PUT") == []


@pytest.mark.parametrize(
    ("name", "model_uri", "config", "message"),
    [
        ("ab", "models:/iris/1", {"image": IMAGE}, "3-32"),
        ("1churn", "models:/iris/1", {"image": IMAGE}, "starting with a letter"),
        ("churn_api", "models:/iris/1", {"image": IMAGE}, "letters, digits and '-'"),
        ("x" * 33, "models:/iris/1", {"image": IMAGE}, "3-32"),
        (NAME, "models:/iris/latest", {"image": IMAGE}, "models:/NAME/VERSION"),
        (NAME, "models:/iris/1", {}, "give an image"),
        (NAME, "models:/iris/1", {"image": IMAGE, "environment": "azureml:e:1"}, "not both"),
        (NAME, "models:/iris/1", {"image": "reg/x:{tag}"}, "only {model} and {version}"),
        (NAME, "models:/iris/1", {"image": IMAGE, "replicas": 2}, "unknown config key"),
        (NAME, "models:/iris/1", {"image": IMAGE, "instance_count": 0}, "instance_count"),
        (NAME, "models:/iris/1", {"image": IMAGE, "model_path": "/tmp/x"}, "model_path"),
    ],
)
def test_bad_input_sends_nothing(
    deployer: AzureMLDeployer, transport: RecordedTransport, name: str, model_uri: str,
    config: dict[str, Any], message: str,
) -> None:
    with pytest.raises(InvalidValue, match=message):
        deployer.deploy(name, model_uri, config)
    assert transport.requests == []


@pytest.mark.parametrize("uri", ["azureml://rg/ws", f"{TARGET}?sas_token=abc", f"{TARGET}?instance_type=x"])
def test_bad_target_is_a_config_error(uri: str) -> None:
    with pytest.raises(ConfigError, match="azureml deployer"):
        AzureMLDeployer(uri, credential=FakeCredential())


def test_render_sends_nothing(deployer: AzureMLDeployer, transport: RecordedTransport) -> None:
    rendered = deployer.render(NAME, "models:/iris/2", {"image": IMAGE, "instance_type": "Standard_F4s_v2"}, "green")
    bodies = rendered.to_dicts()
    assert bodies["deployment"]["properties"]["instanceType"] == "Standard_F4s_v2"
    assert bodies["deployment"]["tags"]["mlops.version"] == "2"
    assert bodies["environment"]["image"] == "mlopsreg.azurecr.io/iris:2"
    assert bodies["model"]["path"] == "azureml://datastores/workspaceblobstore/paths/mlops-models/iris/2/"
    assert transport.requests == []


def test_a_deploy_failing_any_other_way_leaves_nothing_either(
    deployer: AzureMLDeployer, transport: RecordedTransport
) -> None:
    """A token that expires while ``blue`` is created is not a DeploymentError, but nothing may stay billed."""
    transport.respond("PUT", r"/deployments/blue$", [{"status": 401, "body": {
        "error": {"code": "ExpiredAuthenticationToken", "message": "The access token expired."}}}], times=1)
    with pytest.raises(AuthenticationError, match="azureml deployer"):
        deployer.deploy(NAME, "models:/iris/1", UPLOADED)
    assert traffic_puts(transport) == []
    (delete,) = transport.sent("DELETE")
    assert delete.resource == f"onlineEndpoints/{NAME}"
    with pytest.raises(DeploymentNotFound):
        deployer.status(NAME)
