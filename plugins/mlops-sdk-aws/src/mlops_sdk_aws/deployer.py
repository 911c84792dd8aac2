"""Deployer ``sagemaker://``: a model version served on a SageMaker real-time endpoint.

``sagemaker://us-east-1?role=ARN&bucket=s3://BUCKET/PREFIX&image=IMAGE&instance_type=ml.m5.large``

:meth:`SageMakerDeployer.deploy` exports the model version as a
self-contained bundle (the build context of :func:`mlops_sdk.container.build_context`:
``model/`` workspace, ``requirements.txt``, ``Dockerfile``), packs it as
``model.tar.gz``, uploads it through the ``s3://`` storage (mlops-sdk-s3) to
``BUCKET/PREFIX/sagemaker/DEPLOYMENT/MODEL-VERSION/model.tar.gz``, then creates

* a SageMaker **model** ``DEPLOYMENT-vVERSION-XXXXXXXX`` (the image, the
  bundle as ``ModelDataUrl``, the execution role, ``MLOPS_MODEL=NAME@V``),
* an **endpoint configuration** of the same name (one production variant:
  ``variant``, ``instance_type``, ``instance_count``) tagged with the model,
  version and the configuration it replaced (``mlops:previous``),
* the **endpoint** ``DEPLOYMENT`` (tagged ``mlops:managed-by=mlops-sdk``),

and waits (``timeout`` seconds, 1800 by default) until it is ``InService``.
SageMaker unpacks the bundle into ``/opt/ml/model`` and starts the image with
``serve``; the image runs ``mlops --workspace /opt/ml/model/model serve NAME@V
--port 8080``, whose ``/ping`` and ``/invocations`` routes are SageMaker's
serving contract (``docs/aws.md`` has a Dockerfile).

:meth:`update` creates a new model and configuration and calls
``UpdateEndpoint``: SageMaker keeps the old configuration serving until the
new one is healthy, and rolls back by itself when it is not; either way a
failed update raises :class:`~mlops_sdk.errors.DeploymentError` and the new
model and configuration are deleted. :meth:`rollback` calls
``UpdateEndpoint`` with the configuration named by the current one's
``mlops:previous`` tag. All state lives in SageMaker (names and tags), so any
process can manage the same deployment.

Config keys (``ws.deploy(..., config=...)``): ``image``, ``instance_type``,
``instance_count``, ``variant``, ``timeout``, ``env`` (extra container
environment), ``alias`` (set by ``ws.deploy`` for alias deployments).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import re
import tarfile
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlops_sdk.deploy.base import Deployer, DeploymentInfo
from mlops_sdk.errors import (
    AuthenticationError,
    BackendError,
    ConfigError,
    DeploymentError,
    DeploymentNotFound,
    InvalidValue,
    MlopsError,
)

from mlops_sdk_aws.common import (
    MANAGED_BY,
    TAG_MANAGED,
    SageMakerBackend,
    Target,
    check_image,
    check_instance_type,
    error_code,
    is_missing,
    translate,
    validate_name,
)

MAX_DEPLOYMENT_NAME = 40  # leaves room for "-v<version>-<8 hex>" in model and configuration names
TAG_DEPLOYMENT = "mlops:deployment"
TAG_MODEL = "mlops:model"
TAG_VERSION = "mlops:version"
TAG_PREVIOUS = "mlops:previous"
TAG_ALIAS = "mlops:alias"
TAG_BUNDLE = "mlops:bundle"
CONFIG_KEYS = frozenset({"image", "instance_type", "instance_count", "variant", "timeout", "env", "alias"})
HISTORY_LIMIT = 20
LOG_GROUP = "/aws/sagemaker/Endpoints/{name}"
STATUS = {
    "InService": "running",
    "Creating": "starting",
    "Updating": "updating",
    "SystemUpdating": "updating",
    "RollingBack": "updating",
    "UpdateRollbackFailed": "failed",
    "Failed": "failed",
    "Deleting": "stopping",
    "OutOfService": "failed",
}
_MODEL_URI = re.compile(r"models:/([^/]+)/([0-9]+)")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,1023}")


def parse_model_uri(uri: str) -> tuple[str, int]:
    """``"models:/churn-clf/3"`` → ``("churn-clf", 3)``."""
    match = _MODEL_URI.fullmatch(uri) if isinstance(uri, str) else None
    if match is None:
        raise InvalidValue(f"model URI {uri!r} is not models:/NAME/VERSION")
    return match.group(1), int(match.group(2))


def resource_name(deployment: str, version: int, token: str | None = None) -> str:
    """``DEPLOYMENT-vVERSION-XXXXXXXX``: the name of the SageMaker model and endpoint configuration of one release."""
    return validate_name("model / endpoint configuration name", f"{deployment}-v{version}-{token or uuid.uuid4().hex[:8]}")


def owned_pattern(deployment: str) -> re.Pattern[str]:
    """Names :func:`resource_name` makes for ``deployment`` (and only those)."""
    return re.compile(rf"{re.escape(deployment)}-v[0-9]+-[0-9a-f]{{8}}")


def check_config(config: Mapping[str, Any] | None, target: Target) -> dict[str, Any]:
    """The deploy config with the URI's defaults; ``InvalidValue`` names a bad key."""
    config = dict(config or {})
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise InvalidValue(
            f"deployer {target.label}: unknown config key(s) {', '.join(unknown)}; known: {', '.join(sorted(CONFIG_KEYS))}"
        )
    image = config.get("image") or target.image
    if not image:
        raise ConfigError(
            f"deployer {target.label}: no image; add image=... to the URI or config={{'image': ...}} (an image that "
            "runs `mlops serve` for SageMaker, see docs/aws.md)"
        )
    count = config.get("instance_count", target.instance_count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise InvalidValue(f"deployer {target.label}: instance_count must be a whole number from 1 to 1000, got {count!r}")
    timeout = config.get("timeout", target.timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 <= timeout <= 86_400:
        raise InvalidValue(f"deployer {target.label}: timeout must be seconds from 0 to 86400, got {timeout!r}")
    env = config.get("env") or {}
    if not isinstance(env, Mapping):
        raise InvalidValue(f"deployer {target.label}: env must map variable names to values")
    for key in env:
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise InvalidValue(f"deployer {target.label}: env variable name {key!r} is not valid")
    alias = config.get("alias")
    if alias is not None and not isinstance(alias, str):
        raise InvalidValue(f"deployer {target.label}: alias must be text, got {alias!r}")
    return {
        "image": check_image(f"deployer {target.label}: image", image),
        "instance_type": check_instance_type(f"deployer {target.label}: instance_type", config.get("instance_type") or target.instance_type),
        "instance_count": count,
        "variant": validate_name(f"deployer {target.label}: variant", config.get("variant") or target.variant),
        "timeout": float(timeout),
        "env": {str(k): str(v) for k, v in env.items()},
        "alias": alias,
    }


def pack_bundle(mv: Any, dest: Path) -> Path:
    """``model.tar.gz`` of ``mv``'s build context (``model/`` workspace, ``requirements.txt``, ``Dockerfile``)."""
    from mlops_sdk.container import build_context

    context = dest / "context"
    build_context(mv, context)
    archive = dest / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(context.rglob("*")):
            tar.add(path, arcname=path.relative_to(context).as_posix(), recursive=False)
    return archive


def _tags(items: Sequence[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or []}


class SageMakerDeployer(SageMakerBackend, Deployer):
    """Deployments as SageMaker endpoints (see the module doc)."""

    kind = "deployer"

    def __init__(self, uri: str, *, root: Path | str = ".", env: Mapping[str, str] | None = None, **_: Any) -> None:
        super().__init__(uri, root=root)
        self.env = dict(env or {})

    def _call(self, name: str, what: str, method: str, service: str = "sagemaker", **kwargs: Any) -> Any:
        """One API call; unknown resources → ``DeploymentNotFound``, refused credentials → ``AuthenticationError``."""
        try:
            return getattr(self._client(service), method)(**kwargs)
        except MlopsError:
            raise
        except Exception as exc:
            if is_missing(exc):
                raise DeploymentNotFound(f"{self.who}: deployment {name!r}: {what}: not found") from exc
            error = translate(exc, self.who, f"{what} (deployment {name!r})")
            if isinstance(error, AuthenticationError):
                raise error from exc
            raise DeploymentError(str(error)) from exc

    def _check_name(self, name: str) -> str:
        return validate_name(f"{self.who}: deployment name", name, max_len=MAX_DEPLOYMENT_NAME)

    def _workspace(self) -> Any:
        import mlops_sdk

        tracking = self.env.get("MLOPS_TRACKING")
        storage = self.env.get("MLOPS_STORAGE")
        return mlops_sdk.Workspace.open(self.root, tracking=tracking, storage=storage)

    def _tags_of(self, name: str, arn: str) -> dict[str, str]:
        page = self._call(name, "list tags", "list_tags", ResourceArn=arn)
        tags = _tags(page.get("Tags"))
        while page.get("NextToken"):
            page = self._call(name, "list tags", "list_tags", ResourceArn=arn, NextToken=page["NextToken"])
            tags.update(_tags(page.get("Tags")))
        return tags

    def _config_tags(self, name: str, config_name: str) -> dict[str, str]:
        described = self._call(name, f"describe endpoint configuration {config_name}", "describe_endpoint_config",
                               EndpointConfigName=config_name)
        return self._tags_of(name, described["EndpointConfigArn"])

    def _endpoint(self, name: str) -> dict[str, Any]:
        return dict(self._call(name, "describe endpoint", "describe_endpoint", EndpointName=name))

    # -- releases: model + endpoint configuration --------------------------------------------------------
    def _release(self, name: str, model_uri: str, cfg: Mapping[str, Any], previous: str | None) -> str:
        """Upload the bundle, create the model and the endpoint configuration; return their name."""
        model, version = parse_model_uri(model_uri)
        self.target.require("sagemaker deployer", "role", "bucket")
        ws = self._workspace()
        try:
            mv = ws.model(model).version(version)
            with tempfile.TemporaryDirectory(prefix="mlops-sagemaker-") as tmp:
                archive = pack_bundle(mv, Path(tmp))
                key = f"sagemaker/{name}/{model}-{version}/model.tar.gz"
                self.storage.put_file(key, archive)
        finally:
            ws.close()
        release = resource_name(name, version)
        bundle_url = self.target.s3_url(key)
        tags = [
            {"Key": TAG_MANAGED, "Value": MANAGED_BY},
            {"Key": TAG_DEPLOYMENT, "Value": name},
            {"Key": TAG_MODEL, "Value": model[:256]},
            {"Key": TAG_VERSION, "Value": str(version)},
            {"Key": TAG_BUNDLE, "Value": bundle_url[:256]},
        ]
        environment = {**cfg["env"], "MLOPS_MODEL": f"{model}@{version}", "MLOPS_MODEL_DIR": "/opt/ml/model/model"}
        self._call(name, f"create model {release}", "create_model", ModelName=release, ExecutionRoleArn=self.target.role,
                   PrimaryContainer={"Image": cfg["image"], "ModelDataUrl": bundle_url, "Environment": environment},
                   Tags=tags)
        try:
            self._call(
                name, f"create endpoint configuration {release}", "create_endpoint_config",
                EndpointConfigName=release,
                ProductionVariants=[{
                    "VariantName": cfg["variant"], "ModelName": release, "InitialInstanceCount": cfg["instance_count"],
                    "InstanceType": cfg["instance_type"], "InitialVariantWeight": 1.0,
                }],
                Tags=[*tags, {"Key": TAG_PREVIOUS, "Value": previous or ""},
                      {"Key": "mlops:config", "Value": json.dumps(
                          {k: cfg[k] for k in ("image", "instance_type", "instance_count", "variant")})[:256]}],
            )
        except BaseException:
            self._delete_release(name, release)
            raise
        return release

    def _delete_release(self, name: str, release: str) -> None:
        for what, method, key in (
            ("delete endpoint configuration", "delete_endpoint_config", "EndpointConfigName"),
            ("delete model", "delete_model", "ModelName"),
        ):
            with contextlib.suppress(DeploymentNotFound):
                self._call(name, f"{what} {release}", method, **{key: release})

    def _wait(self, name: str, timeout: float, want_config: str) -> dict[str, Any]:
        """Until the endpoint is InService on ``want_config``; ``DeploymentError`` when it fails or time runs out."""
        deadline = time.monotonic() + timeout
        delay = min(1.0, self.target.poll)
        while True:
            endpoint = self._endpoint(name)
            status = endpoint.get("EndpointStatus")
            if status == "InService":
                if endpoint.get("EndpointConfigName") == want_config:
                    return endpoint
                raise DeploymentError(
                    f"{self.who}: deployment {name!r}: SageMaker rolled back to {endpoint.get('EndpointConfigName')!r} "
                    f"instead of serving {want_config!r}: {endpoint.get('FailureReason') or 'no reason given'}"
                )
            if status in ("Failed", "OutOfService", "UpdateRollbackFailed"):
                raise DeploymentError(
                    f"{self.who}: deployment {name!r} is {status}: {endpoint.get('FailureReason') or 'no reason given'}"
                )
            if time.monotonic() >= deadline:
                raise DeploymentError(
                    f"{self.who}: deployment {name!r} was not InService within {timeout:.0f}s (it is {status}); "
                    "see `logs`"
                )
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, self.target.poll)

    def _switch(self, name: str, release: str, timeout: float) -> None:
        self._call(name, f"update endpoint to {release}", "update_endpoint", EndpointName=name, EndpointConfigName=release)
        self._wait(name, timeout, release)

    # -- the Deployer contract ------------------------------------------------------------------------
    def deploy(self, name: str, model_uri: str, config: Mapping[str, Any] | None = None) -> DeploymentInfo:
        self._check_name(name)
        cfg = check_config(config, self.target)
        parse_model_uri(model_uri)
        with contextlib.suppress(DeploymentNotFound):
            self._endpoint(name)
            raise DeploymentError(
                f"{self.who}: endpoint {name!r} already exists; use update() to serve another version, or stop() it first"
            )
        release = self._release(name, model_uri, cfg, previous=None)
        endpoint_tags = [{"Key": TAG_MANAGED, "Value": MANAGED_BY}, {"Key": TAG_DEPLOYMENT, "Value": name}]
        if cfg["alias"]:
            endpoint_tags.append({"Key": TAG_ALIAS, "Value": cfg["alias"][:256]})
        try:
            self._call(name, "create endpoint", "create_endpoint", EndpointName=name, EndpointConfigName=release,
                       Tags=endpoint_tags)
            self._wait(name, cfg["timeout"], release)
        except BaseException:
            self.stop(name)  # the contract: a failed deploy leaves nothing running
            raise
        return self.status(name)

    def update(self, name: str, model_uri: str) -> DeploymentInfo:
        self._check_name(name)
        endpoint = self._endpoint(name)
        current = str(endpoint["EndpointConfigName"])
        tags = self._config_tags(name, current)
        try:
            saved = json.loads(tags.get("mlops:config", "{}"))
        except ValueError:
            saved = {}
        saved = {k: v for k, v in saved.items() if k in CONFIG_KEYS}
        saved["env"] = self._extra_env(name, current)  # the container environment carries over
        cfg = check_config(saved, self.target)
        model, _version = parse_model_uri(model_uri)
        if tags.get(TAG_MODEL) and tags[TAG_MODEL] != model[:256]:
            raise DeploymentError(f"{self.who}: deployment {name!r} serves model {tags[TAG_MODEL]!r}, not {model!r}")
        release = self._release(name, model_uri, cfg, previous=current)
        try:
            self._switch(name, release, cfg["timeout"])
        except (DeploymentError, BackendError) as exc:
            # SageMaker keeps the old configuration serving (it rolls a failed update back by itself)
            with contextlib.suppress(MlopsError):
                if self._endpoint(name).get("EndpointConfigName") != release:
                    self._delete_release(name, release)
            raise DeploymentError(
                f"{self.who}: update of deployment {name!r} to {model_uri} failed; {current!r} keeps serving: {exc}"
            ) from exc
        return self.status(name)

    def _extra_env(self, name: str, config_name: str) -> dict[str, str]:
        """The ``env`` given at deploy time: the current model's environment less what the deployer sets."""
        config = self._call(name, f"describe endpoint configuration {config_name}", "describe_endpoint_config",
                            EndpointConfigName=config_name)
        model_name = config["ProductionVariants"][0]["ModelName"]
        described = self._call(name, f"describe model {model_name}", "describe_model", ModelName=model_name)
        env = described.get("PrimaryContainer", {}).get("Environment") or {}
        return {str(k): str(v) for k, v in env.items() if k not in ("MLOPS_MODEL", "MLOPS_MODEL_DIR")}

    def rollback(self, name: str) -> DeploymentInfo:
        self._check_name(name)
        current = str(self._endpoint(name)["EndpointConfigName"])
        previous = self._config_tags(name, current).get(TAG_PREVIOUS)
        if not previous:
            raise DeploymentError(f"{self.who}: deployment {name!r} has no previous version to roll back to")
        try:
            self._switch(name, previous, self.target.timeout)
        except DeploymentNotFound as exc:
            raise DeploymentError(
                f"{self.who}: deployment {name!r}: the previous endpoint configuration {previous!r} no longer exists"
            ) from exc
        return self.status(name)

    def set_alias(self, name: str, alias: str | None) -> None:
        """Record the model alias the deployment follows (a tag on the endpoint)."""
        arn = self._endpoint(name)["EndpointArn"]
        self._call(name, "delete alias tag", "delete_tags", ResourceArn=arn, TagKeys=[TAG_ALIAS])
        if alias:
            self._call(name, "tag alias", "add_tags", ResourceArn=arn, Tags=[{"Key": TAG_ALIAS, "Value": alias[:256]}])

    def predict(self, name: str, rows: Sequence[Any]) -> list[Any]:
        """``InvokeEndpoint`` with a JSON body in the serving format (``dataframe_split`` / ``dataframe_records`` / ``inputs``)."""
        from mlops_sdk.deploy.local import payload_for

        self._check_name(name)
        body = json.dumps(payload_for(rows), allow_nan=False).encode()
        answer = self._call(name, "invoke endpoint", "invoke_endpoint", service="sagemaker-runtime",
                            EndpointName=name, Body=body, ContentType="application/json", Accept="application/json")
        raw = answer["Body"].read()
        try:
            data = json.loads(raw)
        except ValueError:
            raise DeploymentError(
                f"{self.who}: deployment {name!r} answered something that is not JSON: {raw[:200]!r}"
            ) from None
        predictions = data.get("predictions") if isinstance(data, Mapping) else data
        if not isinstance(predictions, list):
            raise DeploymentError(f"{self.who}: deployment {name!r} answered without a list of predictions: {raw[:200]!r}")
        return predictions

    def status(self, name: str) -> DeploymentInfo:
        self._check_name(name)
        return self._info(self._endpoint(name))

    def _info(self, endpoint: Mapping[str, Any]) -> DeploymentInfo:
        name = str(endpoint["EndpointName"])
        current = str(endpoint.get("EndpointConfigName", ""))
        endpoint_tags = self._tags_of(name, str(endpoint["EndpointArn"]))
        tags = self._config_tags(name, current) if current else {}
        previous_versions: list[int] = []
        history: list[str] = []
        seen = {current}
        link = tags.get(TAG_PREVIOUS)
        while link and link not in seen and len(history) < HISTORY_LIMIT:
            seen.add(link)
            try:
                older = self._config_tags(name, link)
            except DeploymentNotFound:
                break
            history.append(link)
            with contextlib.suppress(ValueError):
                previous_versions.append(int(older.get(TAG_VERSION, "")))
            link = older.get(TAG_PREVIOUS)
        region = self._session.region_name if self._session is not None else self.target.region
        return DeploymentInfo(
            name=name,
            model=tags.get(TAG_MODEL, ""),
            version=int(tags.get(TAG_VERSION, "0") or 0),
            url=f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{name}/invocations",
            status=STATUS.get(str(endpoint.get("EndpointStatus")), str(endpoint.get("EndpointStatus", "unknown")).lower()),
            previous_versions=tuple(reversed(previous_versions)),
            alias=endpoint_tags.get(TAG_ALIAS) or None,
            details={
                "endpoint_config": current,
                "endpoint_arn": endpoint.get("EndpointArn"),
                "sagemaker_status": endpoint.get("EndpointStatus"),
                "failure_reason": endpoint.get("FailureReason"),
                "bundle": tags.get(TAG_BUNDLE),
                "history": list(reversed(history)),
            },
        )

    def list(self) -> builtins.list[DeploymentInfo]:
        out = []
        kwargs: dict[str, Any] = {}
        while True:
            page = self._call("*", "list endpoints", "list_endpoints", **kwargs)
            for summary in page.get("Endpoints", []):
                name = summary["EndpointName"]
                with contextlib.suppress(DeploymentNotFound):
                    tags = self._tags_of(name, summary["EndpointArn"])
                    if tags.get(TAG_MANAGED) == MANAGED_BY:
                        out.append(self._info(self._endpoint(name)))
            if not page.get("NextToken"):
                return sorted(out, key=lambda info: info.name)
            kwargs["NextToken"] = page["NextToken"]

    def logs(self, name: str, tail: int = 100) -> str:
        """The last ``tail`` lines of CloudWatch Logs group ``/aws/sagemaker/Endpoints/NAME`` (every stream)."""
        self._check_name(name)
        group = LOG_GROUP.format(name=name)
        logs = self._client("logs")
        lines: builtins.list[tuple[int, str]] = []
        try:
            kwargs: dict[str, Any] = {"logGroupName": group}
            while True:
                page = logs.filter_log_events(**kwargs)
                lines += [(int(e.get("timestamp", 0)), e["message"].rstrip("\n")) for e in page.get("events", [])]
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return ""
            raise translate(exc, self.who, f"read the logs of deployment {name!r}") from exc
        lines.sort(key=lambda item: item[0])
        return "\n".join(text for _, text in lines[-tail:]) if tail > 0 else ""

    def stop(self, name: str) -> None:
        """Delete the endpoint, then every endpoint configuration and model of the deployment (idempotent)."""
        self._check_name(name)
        with contextlib.suppress(DeploymentNotFound):
            self._call(name, "delete endpoint", "delete_endpoint", EndpointName=name)
        mine = owned_pattern(name)
        for lister, key, deleter, arg in (
            ("list_endpoint_configs", "EndpointConfigs", "delete_endpoint_config", "EndpointConfigName"),
            ("list_models", "Models", "delete_model", "ModelName"),
        ):
            names: builtins.list[str] = []
            kwargs: dict[str, Any] = {"NameContains": name}
            while True:
                page = self._call(name, lister.replace("_", " "), lister, **kwargs)
                names += [item[arg] for item in page.get(key, []) if mine.fullmatch(item[arg])]
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
            for found in names:
                with contextlib.suppress(DeploymentNotFound):
                    self._call(name, f"{deleter.replace('_', ' ')} {found}", deleter, **{arg: found})


__all__ = [
    "SageMakerDeployer",
    "check_config",
    "owned_pattern",
    "pack_bundle",
    "parse_model_uri",
    "resource_name",
]
