"""What the ``azureml://`` compute backend and deployer share: URIs, names, the client, errors.

A target is ``azureml://SUBSCRIPTION/RESOURCE_GROUP/WORKSPACE?option=value``.
The URI holds no secret: credentials come from ``azure.identity``'s
``DefaultAzureCredential`` (environment variables of a service principal,
workload or managed identity, the Azure CLI's ``az login``…), and a URI that
tries to carry one (``?client_secret=…``, ``?sas=…``, a ``user:password@``
part) is refused with :class:`~mlops_sdk.errors.ConfigError`.

Everything goes through the Azure ML SDK (``azure.ai.ml.MLClient``); extra
client keywords (``client_kwargs``) go to its azure-core pipelines, which is
how the tests give it a recorded-response ``transport`` (Azure ML has no
emulator). Names are checked against Azure ML's rules before any request, so a
bad name costs no round trip and leaves the workspace unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar
from urllib.parse import parse_qsl, urlsplit

import attrs
from mlops_sdk.errors import (
    AuthenticationError,
    BackendError,
    ConfigError,
    InvalidValue,
    MissingDependency,
    MlopsError,
)

SCHEME = "azureml"
DEFAULT_DATASTORE = "workspaceblobstore"

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules
_RESOURCE_GROUP = re.compile(r"[-\w.()]{0,89}[-\w()]", re.ASCII)
_WORKSPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,32}")
# Azure ML: online endpoint names are 3-32 characters, start with a letter, then letters, digits and
# '-', and end with a letter or digit; deployment names are the same, 1-32 characters.
_ENDPOINT = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]")
_DEPLOYMENT = re.compile(r"[A-Za-z]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?")
_JOB = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,254}")
_ASSET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")  # model and environment names
_COMPUTE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,14}[A-Za-z0-9]")  # compute clusters: 2-16 characters
_INSTANCE_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]{1,63}")  # Standard_DS3_v2
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")
_ENVIRONMENT = re.compile(r"(azureml:)?[A-Za-z0-9][A-Za-z0-9_.-]{0,254}([:@][A-Za-z0-9_.-]{1,64})")
_SECRET_WORDS = ("secret", "password", "key", "token", "sas", "sig", "credential")


@attrs.frozen
class Target:
    """What an ``azureml://`` URI names: a workspace, and non-secret options."""

    subscription: str
    resource_group: str
    workspace: str
    options: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def uri(self) -> str:
        return f"{SCHEME}://{self.subscription}/{self.resource_group}/{self.workspace}"

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}"
        )


def parse_uri(uri: object, what: str, options: frozenset[str]) -> Target:
    """``azureml://SUB/RG/WS?compute=cpu`` → :class:`Target`; anything else raises ``ConfigError``.

    ``what`` names the backend in messages (``"azureml compute"``);
    ``options`` are the query keys it knows.
    """
    form = f"{SCHEME}://SUBSCRIPTION_ID/RESOURCE_GROUP/WORKSPACE"
    if not isinstance(uri, str) or not uri.lower().startswith(f"{SCHEME}://"):
        raise ConfigError(f"{what}: expected {form}, got {uri!r}")
    parts = urlsplit(uri)
    uri = uri.partition("?")[0]  # messages never show the query (it may hold what it must not)
    if "@" in parts.netloc:
        raise ConfigError(
            f"{what}: {form} must not hold credentials (a user or password); they come from "
            "DefaultAzureCredential (az login, a managed identity or AZURE_CLIENT_ID/AZURE_TENANT_ID/…)"
        )
    segments = [parts.netloc, *parts.path.strip("/").split("/")] if parts.path.strip("/") else [parts.netloc]
    if len(segments) != 3 or not all(segments):
        raise ConfigError(f"{what}: expected {form}, got {uri!r}")
    sub, group, workspace = segments
    if not _GUID.fullmatch(sub):
        raise ConfigError(f"{what}: {sub!r} in {uri!r} is not a subscription id (a GUID like 0b1f6471-…)")
    if not _RESOURCE_GROUP.fullmatch(group):
        raise ConfigError(
            f"{what}: {group!r} in {uri!r} is not a resource group name (1-90 letters, digits, '_', '-', "
            "'.', '(' or ')', not ending in '.')"
        )
    if not _WORKSPACE.fullmatch(workspace):
        raise ConfigError(
            f"{what}: {workspace!r} in {uri!r} is not an Azure ML workspace name (3-33 letters, digits, "
            "'_' or '-', starting with a letter or digit)"
        )
    found: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise ConfigError(
                f"{what}: the URI must not carry credentials (option {key!r}); they come from "
                "DefaultAzureCredential (az login, a managed identity, or AZURE_CLIENT_ID/AZURE_TENANT_ID/"
                "AZURE_CLIENT_SECRET in the environment)"
            )
        if key in found:
            raise ConfigError(f"{what}: option {key!r} is given twice in {uri!r}")
        found[key] = value
    unknown = sorted(set(found) - options)
    if unknown:
        raise ConfigError(
            f"{what}: unknown option(s) {', '.join(unknown)} in {uri!r}; known: {', '.join(sorted(options))}"
        )
    return Target(sub, group, workspace, found)


# -- names --------------------------------------------------------------------------------------
def _check(pattern: re.Pattern[str], rule: str) -> Callable[[str, object], str]:
    def check(what: str, value: object) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise InvalidValue(f"{what} {value!r} is not valid in Azure ML: {rule}")
        return value

    return check


endpoint_name = _check(_ENDPOINT, "use 3-32 letters, digits and '-', starting with a letter and ending "
                                  "with a letter or digit (and unique in the Azure region)")
deployment_name = _check(_DEPLOYMENT, "use 1-32 letters, digits and '-', starting with a letter")
job_name = _check(_JOB, "use 3-255 letters, digits, '_' and '-', starting with a letter or digit")
asset_name = _check(_ASSET, "use at most 255 letters, digits, '_', '-' and '.', starting with a letter or digit")
compute_name = _check(_COMPUTE, "use 2-16 letters, digits and '-', starting with a letter")
instance_type = _check(_INSTANCE_TYPE, "use a VM size like Standard_DS3_v2")
image_ref = _check(_IMAGE, "use an image reference like myregistry.azurecr.io/churn:3")
environment_ref = _check(_ENVIRONMENT, "use azureml:NAME:VERSION or azureml:NAME@latest")


def count(what: str, value: object, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` (text from a URI is accepted)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidValue(f"{what} must be a whole number from {low} to {high}, got {value!r}")
    return value


def sdk() -> Any:
    """``azure.ai.ml`` (with ``.entities``), or ``MissingDependency`` saying which extra to install."""
    try:
        import azure.ai.ml
        import azure.ai.ml.entities
    except ImportError as exc:
        raise MissingDependency("Azure ML needs azure-ai-ml: pip install 'mlops-sdk-azure[ml]'") from exc
    return azure.ai.ml


# -- the client -----------------------------------------------------------------------------------
def default_credential() -> Any:
    """``DefaultAzureCredential()``: env vars, workload/managed identity, ``az login``… (no secret stored)."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise MissingDependency("Azure ML needs azure-identity: pip install 'mlops-sdk-azure[ml]'") from exc
    return DefaultAzureCredential()


def ml_client(target: Target, credential: Any = None, client_kwargs: Mapping[str, Any] | None = None) -> Any:
    """An ``azure.ai.ml.MLClient`` for the target's workspace (no request is sent yet)."""
    try:
        from azure.ai.ml import MLClient
    except ImportError as exc:
        raise MissingDependency("Azure ML needs azure-ai-ml: pip install 'mlops-sdk-azure[ml]'") from exc
    kwargs = {"show_progress": False, "enable_telemetry": False, **(client_kwargs or {})}
    return MLClient(
        credential if credential is not None else default_credential(),
        target.subscription,
        target.resource_group,
        target.workspace,
        **kwargs,
    )


# -- errors ------------------------------------------------------------------------------------
def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an azure-core error, if it has one."""
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def is_not_found(exc: BaseException) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(exc, ResourceNotFoundError) or status_of(exc) == 404


def _message(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return " ".join(lines[:3])[:500] or type(exc).__name__


def raise_translated(
    exc: BaseException, where: str, action: str, error: type[MlopsError] = BackendError
) -> NoReturn:
    """Re-raise an Azure SDK error as ours: refused credentials → ``AuthenticationError``, else ``error``.

    ``where`` names the backend and target (``"azureml compute azureml://…"``).
    """
    if isinstance(exc, MlopsError):
        raise exc
    from azure.core.exceptions import ClientAuthenticationError

    status = status_of(exc)
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        reason = "refused the credentials" if status != 403 else "denied the request (no permission)"
        raise AuthenticationError(
            f"{where}: Azure {reason} while trying to {action}"
            f"{f' (HTTP {status})' if status else ''}: {_message(exc)}. Credentials come from "
            "DefaultAzureCredential; check `az login` or AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, "
            "and that the identity has the AzureML Data Scientist role on the workspace"
        ) from exc
    raise error(f"{where}: could not {action}: {_message(exc)}") from exc


T = TypeVar("T")


def call(where: str, action: str, fn: Callable[..., T], *args: Any,
         error: type[MlopsError] = BackendError, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, with Azure errors translated (see :func:`raise_translated`)."""
    from azure.ai.ml.exceptions import MlException
    from azure.core.exceptions import AzureError

    try:
        return fn(*args, **kwargs)
    except (AzureError, MlException) as exc:  # anything else is a bug, not a service answer: let it through
        raise_translated(exc, where, action, error)


# -- blobs of the workspace's datastore --------------------------------------------------------
def datastore_container(client: Any, where: str, datastore: str) -> Any:
    """A ``ContainerClient`` for a blob datastore of the workspace, with the same credential and pipeline options."""
    store = call(where, f"read datastore {datastore!r}", client.datastores.get, datastore)
    account = getattr(store, "account_name", None)
    container = getattr(store, "container_name", None)
    if not account or not container:
        raise ConfigError(f"{where}: datastore {datastore!r} is not an Azure Blob datastore")
    try:
        from azure.storage.blob import ContainerClient
    except ImportError as exc:
        raise MissingDependency("Azure ML results need azure-storage-blob: pip install 'mlops-sdk-azure[ml]'") from exc
    protocol = getattr(store, "protocol", None) or "https"
    endpoint = getattr(store, "endpoint", None) or "core.windows.net"
    kwargs = {k: v for k, v in client._kwargs.items() if k in ("transport", "retry_total", "connection_timeout")}
    return ContainerClient(
        f"{protocol}://{account}.blob.{endpoint}", container, credential=client._credential, **kwargs
    )


__all__ = [
    "DEFAULT_DATASTORE",
    "SCHEME",
    "Target",
    "call",
    "count",
    "datastore_container",
    "default_credential",
    "ml_client",
    "parse_uri",
    "raise_translated",
]
