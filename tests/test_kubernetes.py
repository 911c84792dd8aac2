"""The kubernetes deployer: manifests valid against the official client's models, CLI render, no-cluster errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mlops_sdk as mlops
from mlops_sdk.cli import cli
from mlops_sdk.errors import ConfigError, InvalidName, InvalidValue, UnknownScheme
from mlops_sdk.plugins import create_backend, get_plugin_manager

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client  # noqa: E402

from mlops_sdk.deploy.kubernetes import (  # noqa: E402
    KubernetesDeployer,
    render_manifests,
    to_model,
    validate_manifest,
)


@pytest.fixture
def iris_model(workspace: mlops.Workspace) -> mlops.ModelVersion:
    X, y = load_iris(return_X_y=True, as_frame=True)
    with workspace.experiment("train").start_run() as run:
        run.log_model(LogisticRegression(max_iter=300).fit(X, y), "Iris_CLF", input_example=X[:5])
        return run.log_model(LogisticRegression(max_iter=300, C=0.5).fit(X, y), "Iris_CLF", input_example=X[:5])


def test_registered_as_a_deployer_backend() -> None:
    entry = get_plugin_manager().registry.lookup("deployer", "kubernetes://ml-prod")
    assert entry.requires == "kubernetes" and entry.plugin
    deployer = create_backend("deployer", "kubernetes://ml-prod")
    assert isinstance(deployer, KubernetesDeployer) and deployer.namespace == "ml-prod"
    assert create_backend("deployer", "kubernetes://").namespace == "default"
    with pytest.raises(UnknownScheme):
        create_backend("deployer", "kubernetez://ml")


def test_manifests_are_valid_client_models() -> None:
    deployer = KubernetesDeployer("kubernetes://ml-prod")
    m = deployer.render(
        "iris-api",
        "models:/Iris_CLF/3",
        {
            "image": "registry.example.com/iris:{version}",
            "hpa": "2:8",
            "env": {"MLOPS_LOG": "info"},
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        },
    )
    assert [d["kind"] for d in m.to_dicts()] == ["Deployment", "Service", "HorizontalPodAutoscaler"]

    dep = to_model(m.deployment)
    assert isinstance(dep, client.V1Deployment)
    assert dep.metadata.namespace == "ml-prod" and dep.spec.replicas == 2  # the HPA's minimum
    pod = dep.spec.template
    assert set(dep.spec.selector.match_labels.items()) <= set(pod.metadata.labels.items())
    assert pod.metadata.labels["mlops.dev/model"] == "Iris_CLF"
    assert pod.metadata.labels["mlops.dev/model-version"] == "3"
    (container,) = pod.spec.containers
    assert container.image == "registry.example.com/iris:3"
    for probe in (container.liveness_probe, container.readiness_probe, container.startup_probe):
        assert probe.http_get.path == "/health" and probe.http_get.port == "http"
    assert container.ports[0].container_port == 8080 and container.ports[0].name == "http"
    assert container.resources.requests == {"cpu": "500m", "memory": "1Gi"}
    assert container.resources.limits == {"memory": "2Gi"}
    assert container.security_context.run_as_non_root is True
    assert container.env[0].name == "MLOPS_LOG"
    assert dep.spec.strategy.rolling_update.max_unavailable == 0

    svc = to_model(m.service)
    assert isinstance(svc, client.V1Service)
    assert svc.spec.selector == dep.spec.selector.match_labels
    assert svc.spec.ports[0].target_port == "http"

    hpa = to_model(m.hpa)  # type: ignore[arg-type]
    assert isinstance(hpa, client.V2HorizontalPodAutoscaler)
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (2, 8)
    assert hpa.spec.scale_target_ref.name == "iris-api"
    assert hpa.spec.metrics[0].resource.target.average_utilization == 70

    # the round trip through the models gives back every document unchanged
    api = client.ApiClient()
    for doc in m.to_dicts():
        assert api.sanitize_for_serialization(to_model(doc)) == doc
    assert list(yaml.safe_load_all(m.to_yaml())) == m.to_dicts()
    assert "&id" not in m.to_yaml()


def test_validation_catches_schema_errors() -> None:
    good = render_manifests("iris", "iris", 1, config={"image": "reg/iris:1"}).deployment
    bad = json.loads(json.dumps(good))
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"  # misspelled
    with pytest.raises(InvalidValue, match="imagePullPolice"):
        validate_manifest(bad)
    missing = json.loads(json.dumps(good))
    del missing["spec"]["selector"]
    with pytest.raises(InvalidValue, match="selector"):
        validate_manifest(missing)
    with pytest.raises(InvalidValue, match="kind"):
        validate_manifest({"apiVersion": "v1", "kind": "Pod"})


def test_without_hpa_and_bad_config() -> None:
    m = render_manifests("iris", "iris", 4, namespace="ns1", config={"image": "reg/iris:4", "replicas": 3})
    assert m.hpa is None and m.deployment["spec"]["replicas"] == 3
    with pytest.raises(InvalidValue, match="needs an image"):
        render_manifests("iris", "iris", 1, config={})
    with pytest.raises(InvalidValue, match="unknown Kubernetes config"):
        render_manifests("iris", "iris", 1, config={"image": "x", "replica": 2})
    with pytest.raises(InvalidValue, match="MIN:MAX"):
        render_manifests("iris", "iris", 1, config={"image": "x", "hpa": "5"})
    with pytest.raises(InvalidValue, match="below min"):
        render_manifests("iris", "iris", 1, config={"image": "x", "hpa": (5, 2)})
    with pytest.raises(InvalidValue, match="quantity"):
        render_manifests("iris", "iris", 1, config={"image": "x", "resources": {"limits": {"cpu": "lots"}}})
    with pytest.raises(InvalidValue, match="image"):
        render_manifests("iris", "iris", 1, config={"image": "x\ny"})
    with pytest.raises(InvalidName):
        render_manifests("Iris_API", "iris", 1, config={"image": "x"})
    with pytest.raises(InvalidValue):
        KubernetesDeployer("kubernetes://../etc")
    with pytest.raises(InvalidName):
        KubernetesDeployer("kubernetes://Prod_NS")
    with pytest.raises(InvalidValue, match="models:/"):
        KubernetesDeployer().render("iris", "iris@3", {"image": "x"})


def test_cluster_operations_without_a_cluster_raise_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    deployer = KubernetesDeployer("kubernetes://ml-prod")
    with pytest.raises(ConfigError, match="no Kubernetes cluster is configured"):
        deployer.deploy("iris", "models:/iris/1", {"image": "reg/iris:1"})
    with pytest.raises(ConfigError):
        deployer.status("iris")


def test_cli_render_and_dry_run(iris_model: mlops.ModelVersion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    ws = ["-w", str(iris_model.workspace.root)]
    runner = CliRunner()
    out = tmp_path / "k8s.yaml"
    result = runner.invoke(
        cli,
        [*ws, "deploy", "render", "Iris_CLF@2", "--target", "kubernetes://ml-prod", "--image", "reg/iris:2",
         "--replicas", "2", "--hpa", "2:6", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(out.read_text()))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    assert docs[0]["metadata"]["name"] == "iris-clf"  # a valid name made from the model's
    assert docs[0]["spec"]["template"]["metadata"]["labels"]["mlops.dev/model-version"] == "2"
    for doc in docs:
        validate_manifest(doc)

    dry = runner.invoke(
        cli, [*ws, "deploy", "apply", "Iris_CLF@1", "--target", "kubernetes://ml-prod", "--image", "reg/iris:1",
              "--name", "iris-api", "--dry-run"],
    )
    assert dry.exit_code == 0, dry.output
    docs = list(yaml.safe_load_all(dry.stdout))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    assert docs[0]["metadata"]["name"] == "iris-api"

    real = runner.invoke(
        cli, [*ws, "deploy", "apply", "Iris_CLF@1", "--target", "kubernetes://ml-prod", "--image", "reg/iris:1"]
    )
    assert real.exit_code == 1 and "no Kubernetes cluster is configured" in real.output
    bad = runner.invoke(cli, [*ws, "deploy", "render", "Iris_CLF@9", "--target", "kubernetes://ml", "--image", "x"])
    assert bad.exit_code == 1 and "no version 9" in bad.output
    unknown = runner.invoke(cli, [*ws, "deploy", "render", "Iris_CLF@1", "--target", "nomad://x", "--image", "x"])
    assert unknown.exit_code == 1 and "nomad" in unknown.output
