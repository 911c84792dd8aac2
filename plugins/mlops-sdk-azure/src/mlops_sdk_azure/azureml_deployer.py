"""Deployer ``azureml://SUBSCRIPTION/RESOURCE_GROUP/WORKSPACE``: Azure ML managed online endpoints, blue/green.

>>> dep = AzureMLDeployer("azureml://0b1f…/rg-ml/ml-prod")                                  # doctest: +SKIP
>>> dep.deploy("churn-api", "models:/churn-clf/3", {"image": "myreg.azurecr.io/churn:{version}"})  # doctest: +SKIP

A deployment is one managed online endpoint (named like the deployment) with
up to two Azure ML deployments, ``blue`` and ``green``:

* :meth:`~AzureMLDeployer.deploy` registers the model version as an Azure ML
  model, creates the endpoint and the ``blue`` deployment, and once ``blue``
  has provisioned, sends it all traffic (``{"blue": 100}``). If ``blue``
  fails, the endpoint is deleted again and :class:`DeploymentError` raised.
* :meth:`~AzureMLDeployer.update` puts the new version on the idle colour and
  moves traffic (``{"green": 100, "blue": 0}``) only after it reports
  ``Succeeded``; if it fails, the live colour keeps 100% and
  :class:`DeploymentError` is raised (the failed deployment stays, at 0%,
  for its logs). The colour that served before is kept at 0%.
* :meth:`~AzureMLDeployer.rollback` sends all traffic back to that colour.
* :meth:`~AzureMLDeployer.stop` deletes the endpoint with its deployments
  (stopping a stopped one is not an error).

The model: the version is exported from the mlops workspace as ``mlops models
build-context`` does it (``Dockerfile``, ``requirements.txt`` and a
self-contained ``model/`` workspace), uploaded to the workspace's default
blob datastore under ``mlops-models/NAME/VERSION/`` and registered as the
custom model ``NAME`` version ``VERSION``; Azure ML mounts it in the
container at ``$AZUREML_MODEL_DIR``. Config ``model_path`` names an
already uploaded folder (``azureml://datastores/…/paths/…``) instead.

The container: config ``image`` is an image built from that build context
(it runs ``mlops serve`` on port 8080 and serves ``/invocations`` and
``/health``); ``{model}`` and ``{version}`` in it are filled in per version,
so :meth:`update` can pick the new version's image. It becomes an Azure ML
environment with the probes and scoring route on that port. Or config
``environment`` names a registered environment (``azureml:NAME:VERSION``)
that has its own inference configuration.

Config keys: ``image`` or ``environment`` (one is required), ``instance_type``
(``Standard_DS3_v2``), ``instance_count`` (1), ``port`` (8080), ``env`` (a
mapping of environment variables for the container), ``model_path``,
``auth_mode`` (``key`` or ``aml_token``). The settings of the live deployment
are reused by :meth:`update` and :meth:`rollback`.

:meth:`render` builds the Azure ML objects (endpoint, deployment) for a
deployment without sending anything: useful to review a deployment, and what
the docs run offline.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from mlops_sdk.deploy.base import Deployer, DeploymentInfo
from mlops_sdk.errors import (
    AuthenticationError,
    ConfigError,
    DeploymentError,
    DeploymentNotFound,
    InvalidValue,
    NotFound,
)

from mlops_sdk_azure import _azureml as az

WHAT = "azureml deployer"
OPTIONS = frozenset({"datastore"})
COLOURS = ("blue", "green")
MANAGED_BY = "mlops-sdk"
TAG_MANAGED = "mlops.managed-by"
TAG_MODEL = "mlops.model"
TAG_VERSION = "mlops.version"
TAG_IMAGE = "mlops.image"
CONFIG_KEYS = frozenset({"image", "environment", "instance_type", "instance_count", "port", "env", "model_path",
                         "auth_mode"})
DEFAULT_INSTANCE_TYPE = "Standard_DS3_v2"
_MODEL_URI = re.compile(r"models:/([^/]+)/([0-9]+)")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DATASTORE_PATH = re.compile(r"azureml://datastores/[A-Za-z0-9_]+/paths/\S+")


def parse_model_uri(uri: object) -> tuple[str, int]:
    """``"models:/churn-clf/3"`` → ``("churn-clf", 3)``."""
    match = _MODEL_URI.fullmatch(uri) if isinstance(uri, str) else None
    if match is None:
        raise InvalidValue(f"{WHAT}: model URI {uri!r} is not models:/NAME/VERSION")
    return az.asset_name("model name", match.group(1)), int(match.group(2))


@attrs.frozen
class Settings:
    """A deployment's checked config."""

    image: str | None
    environment: str | None
    instance_type: str
    instance_count: int
    port: int
    env: Mapping[str, str]
    model_path: str | None
    auth_mode: str


def check_config(config: Mapping[str, Any] | None) -> Settings:
    """The config with defaults, each value checked (``InvalidValue`` naming the key)."""
    config = dict(config or {})
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise InvalidValue(f"{WHAT}: unknown config key(s) {', '.join(unknown)}; known: {', '.join(sorted(CONFIG_KEYS))}")
    image, environment = config.get("image"), config.get("environment")
    if (image is None) == (environment is None):
        raise InvalidValue(
            f"{WHAT}: give an image (built from `mlops models build-context`, may hold {{version}}) or an "
            "environment (azureml:NAME:VERSION with an inference configuration), not both or neither"
        )
    env = config.get("env") or {}
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and _ENV_NAME.fullmatch(k) for k in env):
        raise InvalidValue(f"{WHAT}: env must map variable names to values, got {env!r}")
    model_path = config.get("model_path")
    if model_path is not None and (not isinstance(model_path, str) or not _DATASTORE_PATH.fullmatch(model_path)):
        raise InvalidValue(f"{WHAT}: model_path must be azureml://datastores/NAME/paths/PATH, got {model_path!r}")
    auth = config.get("auth_mode", "key")
    if auth not in ("key", "aml_token"):
        raise InvalidValue(f"{WHAT}: auth_mode must be key or aml_token, got {auth!r}")
    return Settings(
        image=_image_template(image) if image is not None else None,
        environment=az.environment_ref("environment", environment) if environment is not None else None,
        instance_type=az.instance_type("instance_type", config.get("instance_type", DEFAULT_INSTANCE_TYPE)),
        instance_count=az.count("instance_count", config.get("instance_count", 1), 1, 1000),
        port=az.count("port", config.get("port", 8080), 1, 65535),
        env={str(k): str(v) for k, v in env.items()},
        model_path=model_path,
        auth_mode=auth,
    )


def image_for(template: str, model: str, version: int) -> str:
    """Fill ``{model}`` / ``{version}`` in an image reference template."""
    try:
        return az.image_ref("image", template.format(model=model.lower(), version=version))
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidValue(f"{WHAT}: image {template!r}: only {{model}} and {{version}} may be filled in ({exc})") from exc


def _state(obj: Any) -> str:
    """An entity's provisioning state as text (the SDK gives a str or an enum)."""
    state = getattr(obj, "provisioning_state", None)
    return str(getattr(state, "value", state) or "")


def _image_template(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"{WHAT}: image must be an image reference, got {value!r}")
    image_for(value, "model", 1)  # checks the template and the reference it gives
    return value


@attrs.frozen
class Rendered:
    """The Azure ML objects of one deployment colour (``azure.ai.ml`` entities, nothing sent)."""

    endpoint: Any
    deployment: Any
    model: Any

    def to_dicts(self) -> dict[str, Any]:
        """The REST bodies the SDK would send (``properties`` of the endpoint and the deployment)."""
        env = self.deployment.environment
        return {
            "endpoint": self.endpoint._to_rest_online_endpoint("eastus").as_dict(),
            "deployment": self.deployment._to_rest_object("eastus").as_dict(),
            "model": {"name": self.model.name, "version": self.model.version, "path": self.model.path},
            "environment": env if isinstance(env, str) else {"image": env.image,
                                                             "inference_config": env.inference_config},
        }


class AzureMLDeployer(Deployer):
    """Serves model versions from Azure ML managed online endpoints, with blue/green updates.

    ``root`` and ``env`` (``MLOPS_TRACKING``/``MLOPS_STORAGE``) name the mlops
    workspace the models come from. ``credential`` defaults to
    ``DefaultAzureCredential()``; ``client_kwargs`` go to ``MLClient`` (a
    ``transport``, retry settings). Nothing is sent before the first call.
    """

    def __init__(self, uri: str, *, root: Path | str = ".", env: Mapping[str, str] | None = None,
                 credential: Any = None, client_kwargs: Mapping[str, Any] | None = None, **_: Any) -> None:
        self.uri = uri
        self.root = Path(root)
        self.env = dict(env or {})
        self.target = az.parse_uri(uri, WHAT, OPTIONS)
        try:
            self.datastore = az.asset_name("datastore", self.target.options.get("datastore", az.DEFAULT_DATASTORE))
        except InvalidValue as exc:
            raise ConfigError(f"{WHAT} {self.target.uri}: {exc}") from None
        self._credential = credential
        self._client_kwargs = dict(client_kwargs or {})
        self._client: Any = None

    # -- plumbing ----------------------------------------------------------------------------
    def client(self) -> Any:
        if self._client is None:
            self._client = az.ml_client(self.target, self._credential, self._client_kwargs)
        return self._client

    def _where(self, name: str) -> str:
        return f"{WHAT} {self.target.uri}: deployment {name!r}"

    def _call(self, name: str, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return az.call(self._where(name), action, fn, *args, error=DeploymentError, **kwargs)

    def _endpoint(self, name: str) -> Any:
        az.endpoint_name("deployment name", name)
        client = self.client()
        try:
            return self._call(name, "read the endpoint", client.online_endpoints.get, name)
        except DeploymentError as exc:
            if exc.__cause__ is not None and az.is_not_found(exc.__cause__):
                raise DeploymentNotFound(f"{self._where(name)} does not exist (no online endpoint {name!r})") from None
            raise

    def _deployments(self, name: str) -> dict[str, Any]:
        client = self.client()
        found = self._call(name, "list the deployments", client.online_deployments.list, name)
        return {d.name: d for d in self._call(name, "list the deployments", builtins.list, found)}

    # -- rendering ----------------------------------------------------------------------------
    def render(self, name: str, model_uri: str, config: Mapping[str, Any] | None = None,
               colour: str = "blue") -> Rendered:
        """The endpoint, deployment and model objects :meth:`deploy` sends (nothing is sent)."""
        entities = az.sdk().entities
        Environment, Model = entities.Environment, entities.Model
        ManagedOnlineDeployment, ManagedOnlineEndpoint = entities.ManagedOnlineDeployment, entities.ManagedOnlineEndpoint

        az.endpoint_name("deployment name", name)
        az.deployment_name("colour", colour)
        model, version = parse_model_uri(model_uri)
        cfg = check_config(config)
        path = cfg.model_path or self.model_path(model, version)
        asset = Model(name=model, version=str(version), path=path, type="custom_model",
                      tags={TAG_MANAGED: MANAGED_BY, TAG_MODEL: model, TAG_VERSION: str(version)},
                      description=f"mlops-sdk model {model} version {version}")
        endpoint = ManagedOnlineEndpoint(name=name, auth_mode=cfg.auth_mode,
                                         tags={TAG_MANAGED: MANAGED_BY, TAG_MODEL: model},
                                         description=f"mlops-sdk deployment of {model}")
        tags = {TAG_MANAGED: MANAGED_BY, TAG_MODEL: model, TAG_VERSION: str(version)}
        environment: Any
        if cfg.image is not None:
            tags[TAG_IMAGE] = cfg.image
            route = {"port": cfg.port, "path": "/health"}
            environment = Environment(
                image=image_for(cfg.image, model, version),
                inference_config={"liveness_route": route, "readiness_route": route,
                                  "scoring_route": {"port": cfg.port, "path": "/invocations"}},
            )
        else:
            environment = cfg.environment
        deployment = ManagedOnlineDeployment(
            name=colour, endpoint_name=name, model=asset, environment=environment,
            instance_type=cfg.instance_type, instance_count=cfg.instance_count,
            environment_variables=dict(cfg.env) or None, tags=tags,
        )
        return Rendered(endpoint=endpoint, deployment=deployment, model=asset)

    def model_path(self, model: str, version: int) -> str:
        """Where the model bundle of a version goes in the workspace's datastore."""
        return f"azureml://datastores/{self.datastore}/paths/mlops-models/{model}/{version}/"

    # -- model upload -----------------------------------------------------------------------------
    def _upload_model(self, name: str, model: str, version: int) -> None:
        """Export ``model`` v``version`` from the mlops workspace (a build context) into the datastore."""
        import mlops_sdk
        from mlops_sdk.container import build_context

        where = self._where(name)
        ws = mlops_sdk.Workspace.open(self.root, tracking=self.env.get("MLOPS_TRACKING"),
                                      storage=self.env.get("MLOPS_STORAGE"))
        try:
            try:
                mv = ws.model(model).version(version)
            except NotFound as exc:
                raise DeploymentError(f"{where}: models:/{model}/{version} is not in the workspace: {exc}") from exc
            container = az.datastore_container(self.client(), where, self.datastore)
            prefix = f"mlops-models/{model}/{version}/"
            with tempfile.TemporaryDirectory(prefix="mlops-azureml-") as tmp:
                ctx = build_context(mv, Path(tmp) / "context")
                for file in sorted(p for p in ctx.path.rglob("*") if p.is_file()):
                    with file.open("rb") as data:
                        self._call(name, f"upload {file.name}", container.upload_blob,
                                   prefix + file.relative_to(ctx.path).as_posix(), data, overwrite=True)
        finally:
            ws.close()

    def _register(self, name: str, rendered: Rendered, cfg: Settings) -> Any:
        model, version = rendered.model.name, int(rendered.model.version)
        if cfg.model_path is None:
            self._upload_model(name, model, version)
        client = self.client()
        return self._call(name, f"register model {model} version {version}", client.models.create_or_update,
                          rendered.model)

    def _provision(self, name: str, deployment: Any) -> Any:
        """Create or replace one colour and wait; raise DeploymentError unless it reports Succeeded."""
        client = self.client()
        colour = deployment.name
        try:
            poller = self._call(name, f"create deployment {colour!r}",
                                client.online_deployments.begin_create_or_update, deployment)
            self._call(name, f"provision deployment {colour!r}", poller.result)
        except AuthenticationError:
            raise
        except DeploymentError as exc:
            raise DeploymentError(f"{exc}; see logs({name!r})") from exc.__cause__
        done = self._call(name, f"read deployment {colour!r}", client.online_deployments.get, colour, name)
        state = _state(done)
        if state.lower() != "succeeded":
            raise DeploymentError(f"{self._where(name)}: deployment {colour!r} ended {state}; see logs({name!r})")
        return done

    def _set_traffic(self, name: str, traffic: Mapping[str, int]) -> Any:
        client = self.client()
        endpoint = self._endpoint(name)
        endpoint.traffic = dict(traffic)
        poller = self._call(name, f"set traffic {dict(traffic)}", client.online_endpoints.begin_create_or_update,
                            endpoint)
        return self._call(name, f"set traffic {dict(traffic)}", poller.result)

    # -- the Deployer contract ----------------------------------------------------------------
    def deploy(self, name: str, model_uri: str, config: Mapping[str, Any] | None = None) -> DeploymentInfo:
        rendered = self.render(name, model_uri, config, colour=COLOURS[0])  # every check before any request
        cfg = check_config(config)
        client = self.client()
        with contextlib.suppress(DeploymentNotFound):
            self._endpoint(name)
            raise DeploymentError(
                f"{self._where(name)} already exists (an online endpoint of that name); use update() to serve "
                "another version, or stop() it first"
            )
        registered = self._register(name, rendered, cfg)
        rendered.deployment.model = registered
        poller = self._call(name, "create the endpoint", client.online_endpoints.begin_create_or_update,
                            rendered.endpoint)
        try:
            self._call(name, "create the endpoint", poller.result)
            self._provision(name, rendered.deployment)
            self._set_traffic(name, {COLOURS[0]: 100})
        except BaseException:
            # the contract: a failed deploy leaves nothing running (nor billed), whatever failed,
            # a refused token or Ctrl-C included
            with contextlib.suppress(Exception):
                self.stop(name)
            raise
        return self.status(name)

    def _live(self, name: str) -> tuple[Any, dict[str, Any], str]:
        endpoint = self._endpoint(name)
        deployments = self._deployments(name)
        traffic = dict(getattr(endpoint, "traffic", None) or {})
        live = max(traffic, key=lambda k: traffic[k], default=None) if any(traffic.values()) else None
        if live is None or live not in deployments:
            raise DeploymentError(f"{self._where(name)}: no deployment takes traffic (traffic {traffic})")
        return endpoint, deployments, live

    def update(self, name: str, model_uri: str) -> DeploymentInfo:
        _endpoint, deployments, live = self._live(name)
        idle = COLOURS[1] if live == COLOURS[0] else COLOURS[0]
        current = deployments[live]
        config = self._config_of(current)
        rendered = self.render(name, model_uri, config, colour=idle)
        registered = self._register(name, rendered, check_config(config))
        rendered.deployment.model = registered
        self._provision(name, rendered.deployment)  # traffic is untouched until this succeeded
        self._set_traffic(name, {idle: 100, live: 0})
        return self.status(name)

    def rollback(self, name: str) -> DeploymentInfo:
        _endpoint, deployments, live = self._live(name)
        other = COLOURS[1] if live == COLOURS[0] else COLOURS[0]
        previous = deployments.get(other)
        if previous is None:
            raise DeploymentNotFound(f"{self._where(name)} has no previous version to roll back to")
        if _state(previous).lower() != "succeeded":
            raise DeploymentError(
                f"{self._where(name)}: the previous deployment {other!r} is {_state(previous)}, "
                "not ready to take traffic"
            )
        self._set_traffic(name, {other: 100, live: 0})
        return self.status(name)

    def _config_of(self, deployment: Any) -> dict[str, Any]:
        """The config a live deployment was made with (reused for the next version)."""
        tags = dict(getattr(deployment, "tags", None) or {})
        config: dict[str, Any] = {
            "instance_type": deployment.instance_type,
            "instance_count": deployment.instance_count,
        }
        if tags.get(TAG_IMAGE):
            config["image"] = tags[TAG_IMAGE]
            env = deployment.environment
            routes = getattr(env, "inference_config", None) if not isinstance(env, str) else None
            port = (routes or {}).get("scoring_route", {}).get("port") if isinstance(routes, Mapping) else None
            if port:
                config["port"] = int(port)
        else:
            env = deployment.environment
            config["environment"] = env if isinstance(env, str) and env.startswith("azureml:") else f"azureml:{env}"
        variables = dict(getattr(deployment, "environment_variables", None) or {})
        if variables:
            config["env"] = variables
        return config

    def _version_of(self, deployment: Any) -> tuple[str, int]:
        tags = dict(getattr(deployment, "tags", None) or {})
        model = tags.get(TAG_MODEL)
        version = tags.get(TAG_VERSION)
        ref = str(getattr(deployment, "model", "") or "")
        found = re.search(r"/models/([^/]+)/versions/([0-9]+)$", ref) or re.search(r"azureml:([^:]+):([0-9]+)$", ref)
        if found:
            model, version = model or found.group(1), version or found.group(2)
        return str(model or "?"), int(version) if version and str(version).isdigit() else 0

    def status(self, name: str) -> DeploymentInfo:
        endpoint = self._endpoint(name)
        deployments = self._deployments(name)
        traffic = {k: int(v) for k, v in (getattr(endpoint, "traffic", None) or {}).items()}
        live = max(traffic, key=lambda k: traffic[k]) if any(traffic.values()) else None
        model, version = self._version_of(deployments[live]) if live in deployments else ("?", 0)
        previous = tuple(
            self._version_of(d)[1] for colour, d in sorted(deployments.items())
            if colour != live and _state(d).lower() == "succeeded"
        )
        state = _state(endpoint).lower()
        status = "running" if state == "succeeded" and live else (state or "unknown")
        return DeploymentInfo(
            name=name, model=model, version=version, url=getattr(endpoint, "scoring_uri", None), status=status,
            previous_versions=previous,
            details={
                "endpoint": getattr(endpoint, "id", None), "traffic": traffic, "live": live,
                "deployments": {c: {"version": self._version_of(d)[1], "provisioning_state": _state(d)}
                                for c, d in deployments.items()},
            },
        )

    def list(self) -> builtins.list[DeploymentInfo]:
        client = self.client()
        found = self._call("*", "list the endpoints", client.online_endpoints.list)
        endpoints = self._call("*", "list the endpoints", builtins.list, found)
        return [self.status(e.name) for e in endpoints if (e.tags or {}).get(TAG_MANAGED) == MANAGED_BY]

    def predict(self, name: str, rows: Sequence[Any]) -> builtins.list[Any]:
        """POST the rows (MLflow's scoring JSON: ``dataframe_split``, records or ``inputs``) to the endpoint."""
        from mlops_sdk.deploy.local import payload_for

        az.endpoint_name("deployment name", name)
        client = self.client()
        with tempfile.TemporaryDirectory(prefix="mlops-azureml-") as tmp:
            request = Path(tmp) / "request.json"
            request.write_text(json.dumps(payload_for(rows)))
            answer = self._call(name, "invoke the endpoint", client.online_endpoints.invoke,
                                endpoint_name=name, request_file=str(request))
        try:
            data = json.loads(answer)
        except (TypeError, ValueError) as exc:
            raise DeploymentError(f"{self._where(name)}: the endpoint's answer is not JSON: {str(answer)[:200]}") from exc
        if isinstance(data, Mapping):
            if "predictions" not in data:
                raise DeploymentError(f"{self._where(name)}: the endpoint answered without predictions: {str(data)[:200]}")
            data = data["predictions"]
        return builtins.list(data)

    def logs(self, name: str, tail: int = 100) -> str:
        """The container log of the live colour (or of ``blue`` when nothing takes traffic)."""
        endpoint = self._endpoint(name)
        traffic = dict(getattr(endpoint, "traffic", None) or {})
        colour = max(traffic, key=lambda k: traffic[k]) if any(traffic.values()) else COLOURS[0]
        client = self.client()
        text = self._call(name, f"read the logs of {colour!r}", client.online_deployments.get_logs,
                          colour, name, az.count("tail", tail, 1, 10_000))
        return str(text or "")

    def stop(self, name: str) -> None:
        az.endpoint_name("deployment name", name)
        client = self.client()
        try:
            poller = self._call(name, "delete the endpoint", client.online_endpoints.begin_delete, name)
            self._call(name, "delete the endpoint", poller.result)
        except DeploymentError as exc:
            if exc.__cause__ is not None and az.is_not_found(exc.__cause__):
                return  # stopping a stopped deployment is not an error
            raise


__all__ = ["AzureMLDeployer", "Rendered", "check_config", "image_for", "parse_model_uri"]
