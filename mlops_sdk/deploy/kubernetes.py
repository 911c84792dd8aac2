"""The ``kubernetes`` deployer: Deployment + Service (+ HorizontalPodAutoscaler) for a model server image.

>>> dep = KubernetesDeployer("kubernetes://ml-prod")                               # doctest: +SKIP
>>> print(dep.render("churn-api", "models:/churn-clf/3", {"image": "reg/churn:3"}).to_yaml())  # doctest: +SKIP

The image is one built from ``mlops models build-context`` (it runs ``mlops
serve`` on port 8080 as uid 10001). :meth:`KubernetesDeployer.render` builds
the manifests (no cluster needed) and checks each against the official
client's models: it is deserialized into ``V1Deployment`` / ``V1Service`` /
``V2HorizontalPodAutoscaler``, which enforces required fields, and serialized
back, which must give the same document (a misspelled or unknown field is
dropped by the models, so the round trip catches it).

The other methods talk to the cluster in the current kubeconfig context
(``$KUBECONFIG`` or ``~/.kube/config``; ``kubernetes://NS?context=NAME`` picks
another context), or the in-cluster service account; without either they raise
:class:`~mlops_sdk.errors.ConfigError`. Applying is create-or-replace through
``AppsV1Api`` / ``CoreV1Api`` / ``AutoscalingV2Api``. A rolling update keeps
the old pods serving until the new ones pass their readiness probe
(``maxUnavailable: 0``); a rollout that does not become ready in time is
reverted and reported.

Config keys (``deploy(..., config)`` / ``render``): ``image`` (required; may
hold ``{version}``, ``{model}``, filled in for each version, which lets
:meth:`update` and :meth:`rollback` pick the image of another version),
``replicas`` (1), ``hpa`` (``"2:10"``, ``(2, 10)`` or
``{"min": 2, "max": 10, "cpu": 70}``), ``port`` (container port, 8080),
``service_port`` (80), ``resources`` (``{"requests": {...}, "limits": {...}}``),
``env`` (a mapping), ``image_pull_policy``, ``timeout`` (seconds to wait for a
rollout, 600; 0 returns at once).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from mlops_sdk.deploy.base import Deployer, DeploymentInfo
from mlops_sdk.errors import (
    BackendError,
    ConfigError,
    InvalidName,
    InvalidValue,
    MissingDependency,
    NotFound,
    ServerError,
)

SCHEME = "kubernetes"
MANAGED_BY = "mlops-sdk"
PREFIX = "mlops.dev"
LABEL_MODEL = f"{PREFIX}/model"
LABEL_VERSION = f"{PREFIX}/model-version"
ANN_MODEL = f"{PREFIX}/model-name"
ANN_IMAGE = f"{PREFIX}/image"
ANN_CONFIG = f"{PREFIX}/config"
ANN_PREVIOUS = f"{PREFIX}/previous-versions"
CONTAINER = "model-server"
USER_ID = 10001
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "250m", "memory": "512Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
CONFIG_KEYS = frozenset(
    {"image", "replicas", "hpa", "port", "service_port", "resources", "env", "image_pull_policy", "timeout"}
)
MODELS = {"Deployment": "V1Deployment", "Service": "V1Service", "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler"}

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+{}-]{0,254}")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?")
_MODEL_URI = re.compile(r"models:/([^/]+)/([0-9]+)")


# -- names ----------------------------------------------------------------------------------
def validate_dns_label(what: str, value: object) -> str:
    """A Kubernetes object or namespace name: lowercase letters, digits and ``-``, at most 63."""
    if not isinstance(value, str) or not _DNS_LABEL.fullmatch(value):
        raise InvalidName(
            f"{what} {value!r} is not a valid Kubernetes name: use at most 63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    return value


def dns_name(text: str) -> str:
    """``"Churn_CLF"`` → ``"churn-clf"``: the nearest valid Kubernetes name (for defaults)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return name or "model"


def label_value(text: str) -> str:
    """``text`` if it is a valid label value, else a valid approximation (the full text goes in an annotation)."""
    if _LABEL_VALUE.fullmatch(text):
        return text
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def parse_model_uri(uri: str) -> tuple[str, int]:
    """``"models:/churn-clf/3"`` → ``("churn-clf", 3)``."""
    match = _MODEL_URI.fullmatch(uri) if isinstance(uri, str) else None
    if match is None:
        raise InvalidValue(f"model URI {uri!r} is not models:/NAME/VERSION")
    return match.group(1), int(match.group(2))


def parse_target(uri: str) -> tuple[str, str | None]:
    """``"kubernetes://ml-prod?context=prod"`` → ``("ml-prod", "prod")``; no namespace means ``default``."""
    if not isinstance(uri, str) or not uri.lower().startswith(f"{SCHEME}:"):
        raise InvalidValue(f"a Kubernetes target is kubernetes://NAMESPACE, got {uri!r}")
    parts = urlsplit(uri)
    if parts.path not in ("", "/"):
        raise InvalidValue(f"a Kubernetes target is kubernetes://NAMESPACE[?context=NAME], got {uri!r}")
    namespace = validate_dns_label("namespace", parts.netloc or "default")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"context"})
    if unknown:
        raise InvalidValue(f"unknown option(s) {', '.join(unknown)} in {uri!r}; known: context")
    context = query.get("context", [None])[-1]
    return namespace, context


# -- config -----------------------------------------------------------------------------------------
def _int(what: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidValue(f"{what} must be a whole number from {low} to {high}, got {value!r}")
    return value


def parse_hpa(value: object) -> dict[str, int] | None:
    """``"2:10"``, ``(2, 10)`` or ``{"min": 2, "max": 10, "cpu": 70}`` → ``{"min", "max", "cpu"}``."""
    if value is None:
        return None
    spec: dict[str, Any]
    if isinstance(value, str):
        first, sep, second = value.partition(":")
        if not sep or not first.strip().isdigit() or not second.strip().isdigit():
            raise InvalidValue(f"hpa {value!r} is not MIN:MAX (like 2:10)")
        spec = {"min": int(first), "max": int(second)}
    elif isinstance(value, Sequence) and len(value) == 2:
        spec = {"min": value[0], "max": value[1]}
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - {"min", "max", "cpu"})
        if unknown:
            raise InvalidValue(f"unknown hpa key(s) {', '.join(map(str, unknown))}; known: min, max, cpu")
        spec = dict(value)
    else:
        raise InvalidValue(f"hpa must be 'MIN:MAX', (MIN, MAX) or a mapping, got {value!r}")
    low = _int("hpa min", spec.get("min"), 1, 10_000)
    high = _int("hpa max", spec.get("max"), 1, 10_000)
    if high < low:
        raise InvalidValue(f"hpa max ({high}) is below min ({low})")
    return {"min": low, "max": high, "cpu": _int("hpa cpu target (%)", spec.get("cpu", 70), 1, 100)}


def _resources(value: object) -> dict[str, dict[str, str]]:
    if value is None:
        return {k: dict(v) for k, v in DEFAULT_RESOURCES.items()}
    if not isinstance(value, Mapping) or set(value) - {"requests", "limits"}:
        raise InvalidValue(f"resources must be {{'requests': {{...}}, 'limits': {{...}}}}, got {value!r}")
    out: dict[str, dict[str, str]] = {}
    for part, amounts in value.items():
        if not isinstance(amounts, Mapping):
            raise InvalidValue(f"resources[{part!r}] must map a resource (cpu, memory) to an amount")
        out[part] = {}
        for resource, amount in amounts.items():
            text = str(amount)
            if not isinstance(resource, str) or not _QUANTITY.fullmatch(text):
                raise InvalidValue(f"resources[{part!r}][{resource!r}] = {amount!r} is not a Kubernetes quantity")
            out[part][resource] = text
    return out


def _env(value: object) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise InvalidValue(f"env must map variable names to values, got {type(value).__name__}")
    out = []
    for key, val in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            raise InvalidValue(f"env variable name {key!r} is not valid")
        out.append({"name": key, "value": str(val)})
    return out


def image_for(template: str, model: str, version: int) -> str:
    """Fill ``{model}`` / ``{version}`` in an image reference template."""
    try:
        return template.format(model=dns_name(model), version=version)
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidValue(f"image {template!r}: only {{model}} and {{version}} may be filled in ({exc})") from exc


def check_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The config with defaults, every value checked (``InvalidValue`` naming the key)."""
    config = dict(config or {})
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise InvalidValue(f"unknown Kubernetes config key(s) {', '.join(unknown)}; known: {', '.join(sorted(CONFIG_KEYS))}")
    image = config.get("image")
    if not isinstance(image, str) or not _IMAGE.fullmatch(image):
        raise InvalidValue(
            f"the Kubernetes deployer needs an image (built from `mlops models build-context`), got {image!r}"
        )
    pull = config.get("image_pull_policy", "IfNotPresent")
    if pull not in ("Always", "IfNotPresent", "Never"):
        raise InvalidValue(f"image_pull_policy must be Always, IfNotPresent or Never, got {pull!r}")
    timeout = config.get("timeout", 600)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 <= timeout <= 86_400:
        raise InvalidValue(f"timeout must be seconds from 0 to 86400, got {timeout!r}")
    return {
        "image": image,
        "replicas": _int("replicas", config.get("replicas", 1), 0, 10_000),
        "hpa": parse_hpa(config.get("hpa")),
        "port": _int("port", config.get("port", 8080), 1, 65535),
        "service_port": _int("service_port", config.get("service_port", 80), 1, 65535),
        "resources": _resources(config.get("resources")),
        "env": _env(config.get("env")),
        "image_pull_policy": pull,
        "timeout": float(timeout),
    }


# -- manifests --------------------------------------------------------------------------------------
@attrs.frozen
class Manifests:
    """The rendered objects of one deployment."""

    deployment: dict[str, Any]
    service: dict[str, Any]
    hpa: dict[str, Any] | None = None

    def to_dicts(self) -> list[dict[str, Any]]:
        return [d for d in (self.deployment, self.service, self.hpa) if d is not None]

    def to_yaml(self) -> str:
        """A multi-document YAML stream, ready for ``kubectl apply -f -``."""
        yaml = _import("yaml", "PyYAML")
        return str(yaml.safe_dump_all(self.to_dicts(), sort_keys=False, default_flow_style=False))


def _import(module: str, dist: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(f"the Kubernetes deployer needs {dist}: pip install 'mlops-sdk[kubernetes]'") from exc


def render_manifests(
    name: str,
    model: str,
    version: int,
    *,
    namespace: str = "default",
    config: Mapping[str, Any],
    previous_versions: Sequence[int] = (),
) -> Manifests:
    """Deployment, Service and (with ``hpa``) HorizontalPodAutoscaler for ``model`` v``version``, validated."""
    name = validate_dns_label("deployment name", name)
    namespace = validate_dns_label("namespace", namespace)
    cfg = check_config(config)
    image = image_for(cfg["image"], model, version)
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": MANAGED_BY}
    labels = {
        **selector,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/version": str(version),
        LABEL_MODEL: label_value(model),
        LABEL_VERSION: str(version),
    }
    saved = {k: v for k, v in dict(config).items() if k != "timeout"}
    annotations = {
        ANN_MODEL: model,
        ANN_IMAGE: cfg["image"],
        ANN_CONFIG: json.dumps(saved, sort_keys=True, default=str),
        ANN_PREVIOUS: json.dumps(list(previous_versions)),
    }
    meta = {"name": name, "namespace": namespace, "labels": labels}
    probe = {"httpGet": {"path": "/health", "port": "http"}, "timeoutSeconds": 3}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": cfg["image_pull_policy"],
        "ports": [{"name": "http", "containerPort": cfg["port"], "protocol": "TCP"}],
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "resources": cfg["resources"],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if cfg["env"]:
        container["env"] = cfg["env"]
    hpa = cfg["hpa"]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**meta, "annotations": annotations},
        "spec": {
            "replicas": hpa["min"] if hpa else cfg["replicas"],
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": {"labels": labels, "annotations": {ANN_MODEL: model}},
                "spec": {
                    "containers": [container],
                    "securityContext": {"fsGroup": USER_ID},
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {**meta, "annotations": {ANN_MODEL: model}},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": cfg["service_port"], "targetPort": "http", "protocol": "TCP"}],
        },
    }
    autoscaler = None
    if hpa:
        autoscaler = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": meta,
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": hpa["min"],
                "maxReplicas": hpa["max"],
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": hpa["cpu"]}},
                    }
                ],
            },
        }
    fresh = json.loads(json.dumps([deployment, service, autoscaler]))  # no dict shared between documents
    manifests = Manifests(*fresh)
    for doc in manifests.to_dicts():
        validate_manifest(doc)
    return manifests


def to_model(doc: Mapping[str, Any]) -> Any:
    """``doc`` as the official client's model object (``V1Deployment``, …); ``InvalidValue`` when it does not fit."""
    client = _import("kubernetes.client", "kubernetes")
    kind = doc.get("kind")
    model = MODELS.get(str(kind))
    if model is None:
        raise InvalidValue(f"no client model for kind {kind!r}; known: {', '.join(MODELS)}")
    api = client.ApiClient()
    try:
        return api._ApiClient__deserialize(dict(doc), model)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidValue(f"{kind} {doc.get('metadata', {}).get('name')!r} does not fit {model}: {exc}") from exc


def validate_manifest(doc: Mapping[str, Any]) -> None:
    """Check ``doc`` against the client's model: required fields, types, and no unknown fields (round trip)."""
    obj = to_model(doc)
    client = _import("kubernetes.client", "kubernetes")
    back = client.ApiClient().sanitize_for_serialization(obj)
    if back != json.loads(json.dumps(doc)):
        raise InvalidValue(
            f"{doc.get('kind')} {doc.get('metadata', {}).get('name')!r} has fields the Kubernetes schema does not "
            f"know or values of the wrong type: {_first_difference(doc, back)}"
        )


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            if key not in b:
                return f"{path}.{key} is not part of the schema"
            if key not in a:
                return f"{path}.{key} was added"
            found = _first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return ""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return ""
    return "" if a == b else f"{path or '.'}: {a!r} became {b!r}"


# -- the deployer ---------------------------------------------------------------------------------------
class KubernetesDeployer(Deployer):
    """Deployments of model server images in one namespace (``kubernetes://NAMESPACE``)."""

    def __init__(self, uri: str = f"{SCHEME}://default", **_options: Any) -> None:
        self.uri = uri
        self.namespace, self.context = parse_target(uri)
        self._api_client: Any = None

    # -- rendering (no cluster) ---------------------------------------------------------------
    def render(
        self,
        name: str,
        model_uri: str,
        config: Mapping[str, Any] | None = None,
        *,
        previous_versions: Sequence[int] = (),
    ) -> Manifests:
        """The manifests :meth:`deploy` would apply; needs no cluster."""
        model, version = parse_model_uri(model_uri)
        return render_manifests(
            name, model, version, namespace=self.namespace, config=config or {}, previous_versions=previous_versions
        )

    # -- cluster access -------------------------------------------------------------------------
    def _client(self) -> Any:
        if self._api_client is not None:
            return self._api_client
        _import("kubernetes.client", "kubernetes")
        from kubernetes import client, config

        try:
            api = config.new_client_from_config(context=self.context, persist_config=False)
        except (config.ConfigException, OSError, TypeError) as exc:
            if self.context is not None:
                raise ConfigError(f"{self.uri}: cannot use kubeconfig context {self.context!r}: {exc}") from exc
            configuration = client.Configuration()
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                raise ConfigError(
                    f"{self.uri}: no Kubernetes cluster is configured (no kubeconfig at $KUBECONFIG or "
                    "~/.kube/config, and not running inside a cluster). Use `mlops deploy render` "
                    "(or --dry-run) to print the manifests without a cluster."
                ) from exc
            api = client.ApiClient(configuration)
        self._api_client = api
        return api

    def _apis(self) -> tuple[Any, Any, Any]:
        from kubernetes import client

        api = self._client()
        return client.AppsV1Api(api), client.CoreV1Api(api), client.AutoscalingV2Api(api)

    def _call(self, name: str, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(f"deployment {name!r} not found in {self.uri} ({what})") from exc
            raise BackendError(
                f"{self.uri}: {what} for deployment {name!r} failed: HTTP {exc.status} {exc.reason}: {_message(exc)}"
            ) from exc
        except (OSError, ValueError) as exc:  # urllib3 connection errors
            raise BackendError(f"{self.uri}: {what} for deployment {name!r}: cannot reach the cluster: {exc}") from exc

    def apply(self, manifests: Manifests) -> None:
        """Create each object, or replace it when it exists (the HPA is deleted when no longer wanted)."""
        from kubernetes.client.exceptions import ApiException

        apps, core, autoscaling = self._apis()
        ns = self.namespace
        name = manifests.deployment["metadata"]["name"]

        def upsert(create: Any, replace: Any, body: dict[str, Any], kind: str) -> None:
            try:
                create(ns, body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                replace(name, ns, body)  # the Service is patched: its clusterIP is immutable

        self._call(name, "apply Deployment", upsert, apps.create_namespaced_deployment,
                   apps.replace_namespaced_deployment, manifests.deployment, "Deployment")
        self._call(name, "apply Service", upsert, core.create_namespaced_service,
                   core.patch_namespaced_service, manifests.service, "Service")
        if manifests.hpa is not None:
            self._call(name, "apply HorizontalPodAutoscaler", upsert,
                       autoscaling.create_namespaced_horizontal_pod_autoscaler,
                       autoscaling.replace_namespaced_horizontal_pod_autoscaler, manifests.hpa, "HorizontalPodAutoscaler")
        else:
            with contextlib.suppress(NotFound):
                self._call(name, "remove HorizontalPodAutoscaler",
                           autoscaling.delete_namespaced_horizontal_pod_autoscaler, name, ns)

    def _read(self, name: str) -> Any:
        validate_dns_label("deployment name", name)
        apps, _core, _hpa = self._apis()
        return self._call(name, "read Deployment", apps.read_namespaced_deployment, name, self.namespace)

    def _info(self, dep: Any) -> DeploymentInfo:
        meta = dep.metadata
        labels = meta.labels or {}
        annotations = meta.annotations or {}
        spec_replicas = dep.spec.replicas if dep.spec.replicas is not None else 1
        st = dep.status
        ready = (st.ready_replicas or 0) if st else 0
        updated = (st.updated_replicas or 0) if st else 0
        if spec_replicas == 0:
            status = "stopped"
        elif ready >= spec_replicas and updated >= spec_replicas:
            status = "running"
        elif _deadline_exceeded(dep):
            status = "failed"
        else:
            status = "starting"
        port = 80
        with contextlib.suppress(ValueError, TypeError, KeyError):
            port = int(json.loads(annotations.get(ANN_CONFIG, "{}")).get("service_port", 80))
        url = f"http://{meta.name}.{meta.namespace}.svc.cluster.local" + ("" if port == 80 else f":{port}")
        previous: tuple[int, ...] = ()
        with contextlib.suppress(ValueError, TypeError, KeyError):
            previous = tuple(int(v) for v in json.loads(annotations.get(ANN_PREVIOUS, "[]")))
        return DeploymentInfo(
            name=meta.name,
            model=annotations.get(ANN_MODEL) or labels.get(LABEL_MODEL, ""),
            version=int(labels.get(LABEL_VERSION, 0)),
            url=url,
            status=status,
            previous_versions=previous,
        )

    def _wait(self, name: str, timeout: float) -> DeploymentInfo:
        """Until every replica of the newest revision is ready; ``ServerError`` when the rollout fails or times out."""
        apps, _core, _hpa = self._apis()
        deadline = time.monotonic() + timeout
        while True:
            dep = self._call(name, "read Deployment status", apps.read_namespaced_deployment_status, name, self.namespace)
            want = dep.spec.replicas if dep.spec.replicas is not None else 1
            st = dep.status
            if (
                st is not None
                and (st.observed_generation or 0) >= (dep.metadata.generation or 0)
                and (st.updated_replicas or 0) >= want
                and (st.available_replicas or 0) >= want
                and not st.unavailable_replicas
            ):
                return self._info(dep)
            if _deadline_exceeded(dep) or time.monotonic() >= deadline:
                raise ServerError(
                    f"deployment {name!r} in {self.uri} did not become ready within {timeout:.0f}s "
                    f"(ready {(st.ready_replicas or 0) if st else 0}/{want}); see `logs`"
                )
            time.sleep(2)

    # -- the Deployer contract -------------------------------------------------------------------
    def deploy(self, name: str, model_uri: str, config: Mapping[str, Any] | None = None) -> DeploymentInfo:
        manifests = self.render(name, model_uri, config)
        timeout = check_config(config)["timeout"]
        self.apply(manifests)
        if not timeout:
            return self.status(name)
        try:
            return self._wait(name, timeout)
        except ServerError:
            self.stop(name)  # the contract: a failed deploy leaves nothing running
            raise

    def _redeploy(self, name: str, model_uri: str, previous: list[int]) -> DeploymentInfo:
        current = self._read(name)
        annotations = current.metadata.annotations or {}
        try:
            config = json.loads(annotations[ANN_CONFIG])
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"deployment {name!r} in {self.uri} was not made by mlops-sdk (no {ANN_CONFIG})") from exc
        model, version = parse_model_uri(model_uri)
        if "{version}" not in str(config.get("image", "")):
            raise ConfigError(
                f"deployment {name!r} runs image {config.get('image')!r}, which serves one version; deploy it again "
                "with the new version's image, or use an image template like registry/churn:{version}"
            )
        old = self._info(current)
        manifests = render_manifests(
            name, model, version, namespace=self.namespace, config=config, previous_versions=previous
        )
        self.apply(manifests)
        try:
            return self._wait(name, 600.0)
        except ServerError:
            # put the previous spec back: its pods never stopped serving (maxUnavailable: 0)
            back = render_manifests(
                name, old.model, old.version, namespace=self.namespace, config=config,
                previous_versions=list(old.previous_versions),
            )
            self.apply(back)
            raise

    def update(self, name: str, model_uri: str) -> DeploymentInfo:
        old = self.status(name)
        return self._redeploy(name, model_uri, [*old.previous_versions, old.version][-20:])

    def rollback(self, name: str) -> DeploymentInfo:
        old = self.status(name)
        if not old.previous_versions:
            raise NotFound(f"deployment {name!r} in {self.uri} has no previous version to roll back to")
        *rest, last = old.previous_versions
        return self._redeploy(name, f"models:/{old.model}/{last}", list(rest))

    def predict(self, name: str, rows: Sequence[Any]) -> list[Any]:
        """Through the API server's service proxy (``POST …/services/NAME:http/proxy/invocations``)."""
        validate_dns_label("deployment name", name)
        api = self._client()
        path = f"/api/v1/namespaces/{self.namespace}/services/{name}:http/proxy/invocations"
        response = self._call(
            name, "predict", api.call_api, path, "POST",
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body={"instances": list(rows)}, auth_settings=["BearerToken"],
            _return_http_data_only=True, _preload_content=False,
        )
        data = json.loads(response.data)
        predictions = data.get("predictions") if isinstance(data, Mapping) else data
        return list(predictions or [])

    def status(self, name: str) -> DeploymentInfo:
        return self._info(self._read(name))

    def list(self) -> list[DeploymentInfo]:
        apps, _core, _hpa = self._apis()
        found = self._call(
            "*", "list Deployments", apps.list_namespaced_deployment, self.namespace,
            label_selector=f"app.kubernetes.io/managed-by={MANAGED_BY}",
        )
        return [self._info(d) for d in found.items]

    def logs(self, name: str, tail: int = 100) -> str:
        validate_dns_label("deployment name", name)
        _apps, core, _hpa = self._apis()
        pods = self._call(
            name, "list Pods", core.list_namespaced_pod, self.namespace,
            label_selector=f"app.kubernetes.io/name={name},app.kubernetes.io/managed-by={MANAGED_BY}",
        )
        parts = []
        for pod in pods.items:
            text = self._call(name, "read Pod log", core.read_namespaced_pod_log, pod.metadata.name, self.namespace,
                              container=CONTAINER, tail_lines=tail)
            parts.append(f"==> {pod.metadata.name} <==\n{text}")
        return "\n".join(parts)

    def stop(self, name: str) -> None:
        validate_dns_label("deployment name", name)
        apps, core, autoscaling = self._apis()
        for what, fn in (
            ("delete HorizontalPodAutoscaler", autoscaling.delete_namespaced_horizontal_pod_autoscaler),
            ("delete Service", core.delete_namespaced_service),
            ("delete Deployment", apps.delete_namespaced_deployment),
        ):
            with contextlib.suppress(NotFound):  # stopping a stopped deployment is not an error
                self._call(name, what, fn, name, self.namespace)


def _deadline_exceeded(dep: Any) -> bool:
    for cond in (dep.status.conditions or []) if dep.status else []:
        if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
            return True
    return False


def _message(exc: Any) -> str:
    try:
        return str(json.loads(exc.body).get("message", exc.body))
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or "")


__all__ = [
    "KubernetesDeployer",
    "Manifests",
    "check_config",
    "parse_hpa",
    "parse_model_uri",
    "parse_target",
    "render_manifests",
    "to_model",
    "validate_manifest",
]
