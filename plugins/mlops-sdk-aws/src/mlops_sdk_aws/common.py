"""What the SageMaker compute and deployer share: the ``sagemaker://`` URI, names, clients, errors, storage.

URI::

    sagemaker://REGION?role=ARN&bucket=s3://BUCKET/PREFIX&image=IMAGE&instance_type=ml.m5.large

Only non-secret settings go in the URI. Credentials come from boto3's
standard chain (environment, ``~/.aws``, SSO, instance/container roles); the
service endpoint honours ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_SAGEMAKER``
like every boto3 client (which is how the tests point it at moto). A URI
that carries a secret (``user:password@``, ``secret_access_key=``, …) is
refused with :class:`~mlops_sdk.errors.ConfigError`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
from mlops_sdk.errors import (
    AuthenticationError,
    BackendError,
    ConfigError,
    InvalidValue,
    MissingDependency,
    UnknownScheme,
)

SCHEME = "sagemaker"
MANAGED_BY = "mlops-sdk"
TAG_MANAGED = "mlops:managed-by"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
#: options a ``sagemaker://`` URI may carry (each non-secret)
OPTIONS = frozenset(
    {"role", "bucket", "image", "instance_type", "instance_count", "max_runtime", "volume_size", "timeout",
     "variant", "poll"}
)
_SECRET_WORDS = ("secret", "password", "token", "access_key", "credential", "session")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_NAME = re.compile(r"[A-Za-z0-9](-*[A-Za-z0-9]){0,62}")
_ROLE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_BUCKET = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^?#]*)?")
_INSTANCE = re.compile(r"ml\.[a-z0-9]+\.[a-z0-9]+")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}")
_AUTH_CODES = frozenset(
    {"UnrecognizedClientException", "InvalidClientTokenId", "AccessDeniedException", "AccessDenied",
     "ExpiredTokenException", "ExpiredToken", "SignatureDoesNotMatch", "InvalidSignatureException",
     "IncompleteSignature", "MissingAuthenticationToken", "NotAuthorized"}
)


def validate_name(what: str, value: object, *, max_len: int = 63) -> str:
    """A SageMaker resource name: 1-``max_len`` letters, digits and ``-``, starting and ending with a letter or digit."""
    if not isinstance(value, str) or len(value) > max_len or not _NAME.fullmatch(value):
        raise InvalidValue(
            f"{what} {value!r} cannot be a SageMaker name: use 1 to {max_len} letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def sm_name(text: str, max_len: int = 63) -> str:
    """``"churn_clf.v2"`` → ``"churn-clf-v2"``: the nearest valid SageMaker name (for derived names)."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:max_len].strip("-")
    return name or "mlops"


@attrs.frozen
class Target:
    """What a ``sagemaker://`` URI names."""

    uri: str
    region: str | None
    role: str | None = None
    bucket: str | None = None  # s3://bucket/prefix, without a trailing slash
    image: str | None = None
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    max_runtime: int = 86_400
    volume_size: int = 30
    timeout: float = 1800.0
    variant: str = "AllTraffic"
    poll: float = 5.0

    @property
    def label(self) -> str:
        """``sagemaker://REGION``: how messages name the backend (the options are in the URI the user gave)."""
        return f"{SCHEME}://{self.region or ''}"

    def require(self, what: str, *keys: str) -> None:
        """``ConfigError`` unless every option in ``keys`` is set (for ``what``)."""
        missing = [k for k in keys if not getattr(self, k)]
        if missing:
            hints = {
                "role": "role=arn:aws:iam::ACCOUNT:role/NAME (the execution role SageMaker assumes)",
                "bucket": "bucket=s3://BUCKET/PREFIX (where specs, results and models go)",
                "image": "image=ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG",
            }
            raise ConfigError(
                f"{what} {self.label}: missing {', '.join(missing)}; add "
                + " and ".join(hints.get(k, k) for k in missing)
            )

    def s3_url(self, key: str) -> str:
        """The ``s3://`` URL of storage key ``key`` under the bucket prefix."""
        assert self.bucket is not None
        return f"{self.bucket}/{key}"


def _number(uri: str, key: str, text: str, *, integer: bool, low: float, high: float) -> Any:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise InvalidValue(f"{uri}: {key} must be a {'whole ' if integer else ''}number, got {text!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidValue(f"{uri}: {key} must be from {low:g} to {high:g}, got {text!r}")
    return value


def check_image(what: str, image: object) -> str:
    if not isinstance(image, str) or not _IMAGE.fullmatch(image):
        raise InvalidValue(f"{what}: {image!r} is not a container image reference (like ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG)")
    return image


def check_instance_type(what: str, value: object) -> str:
    if not isinstance(value, str) or not _INSTANCE.fullmatch(value):
        raise InvalidValue(f"{what}: {value!r} is not a SageMaker instance type (like ml.m5.large)")
    return value


def parse_uri(uri: str) -> Target:
    """``sagemaker://us-east-1?role=...&bucket=s3://b/p`` → :class:`Target`; bad URIs raise ``ConfigError``/``InvalidValue``."""
    if not isinstance(uri, str) or not uri.lower().startswith(f"{SCHEME}://"):
        raise ConfigError(f"not a SageMaker URI: {uri!r}; use sagemaker://REGION?role=ARN&bucket=s3://BUCKET/PREFIX")
    parts = urlsplit(uri)
    if "@" in parts.netloc:
        raise ConfigError(
            f"{SCHEME}:// URIs must not carry credentials (found user info before '@'); use the standard AWS "
            "credential chain (environment, ~/.aws, instance roles)"
        )
    if parts.path not in ("", "/"):
        raise ConfigError(f"{SCHEME}://REGION takes no path, got {parts.path!r} in a SageMaker URI")
    region = parts.netloc or None
    if region is not None and not _REGION.fullmatch(region):
        raise InvalidValue(f"{SCHEME}://{region}: {region!r} is not an AWS region (like us-east-1)")
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        lowered = key.lower()
        if any(word in lowered for word in _SECRET_WORDS):
            raise ConfigError(
                f"{SCHEME}://{region or ''}: option {key!r} looks like a secret; credentials never go in the URI "
                "(use the standard AWS credential chain: environment, ~/.aws, instance roles)"
            )
        if key in options:
            raise ConfigError(f"{SCHEME}://{region or ''}: option {key!r} is given twice")
        options[key] = value
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ConfigError(
            f"{SCHEME}://{region or ''}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}"
        )
    shown = uri  # no secrets can be in it past the checks above
    role = options.get("role") or None
    if role is not None and not _ROLE.fullmatch(role):
        raise InvalidValue(f"{shown}: role {role!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
    bucket = options.get("bucket") or None
    if bucket is not None:
        bucket = bucket.rstrip("/")
        if not _BUCKET.fullmatch(bucket) or "//" in bucket[5:]:
            raise InvalidValue(f"{shown}: bucket {bucket!r} is not s3://BUCKET[/PREFIX] (a valid S3 bucket name)")
    image = options.get("image") or None
    if image is not None:
        check_image(shown, image)
    kwargs: dict[str, Any] = {}
    if "instance_type" in options:
        kwargs["instance_type"] = check_instance_type(shown, options["instance_type"])
    if "instance_count" in options:
        kwargs["instance_count"] = _number(shown, "instance_count", options["instance_count"], integer=True, low=1, high=1000)
    if "max_runtime" in options:
        kwargs["max_runtime"] = _number(shown, "max_runtime", options["max_runtime"], integer=True, low=1, high=28 * 86_400)
    if "volume_size" in options:
        kwargs["volume_size"] = _number(shown, "volume_size", options["volume_size"], integer=True, low=1, high=16_384)
    if "timeout" in options:
        kwargs["timeout"] = _number(shown, "timeout", options["timeout"], integer=False, low=0, high=86_400)
    if "poll" in options:
        kwargs["poll"] = _number(shown, "poll", options["poll"], integer=False, low=0.01, high=600)
    if "variant" in options:
        kwargs["variant"] = validate_name(f"{shown}: variant", options["variant"])
    return Target(uri=uri, region=region, role=role, bucket=bucket, image=image, **kwargs)


# -- clients and errors ------------------------------------------------------------------------------
def _boto3() -> Any:
    try:
        import boto3  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - boto3 is a dependency
        raise MissingDependency("the sagemaker backends need boto3: pip install mlops-sdk-aws") from exc
    return boto3


def session(target: Target) -> Any:
    """A boto3 session on the standard credential chain, in the URI's region (else the chain's default)."""
    boto3 = _boto3()
    return boto3.session.Session(region_name=target.region)


def client(sess: Any, service: str) -> Any:
    """A boto3 client; ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` are honoured by boto3 itself."""
    from botocore.config import Config  # type: ignore[import-untyped]

    if sess.region_name is None:
        raise ConfigError(
            f"{SCHEME}://: no AWS region; put it in the URI (sagemaker://us-east-1?...) or set AWS_DEFAULT_REGION"
        )
    # throttling and 5xx are retried with backoff: 8 attempts unless AWS_MAX_ATTEMPTS says otherwise
    attempts = int(os.environ["AWS_MAX_ATTEMPTS"]) if os.environ.get("AWS_MAX_ATTEMPTS", "").isdigit() else 8
    return sess.client(service, config=Config(retries={"max_attempts": attempts, "mode": "standard"}))


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)


def is_auth_error(exc: BaseException) -> bool:
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError  # type: ignore[import-untyped]

    return isinstance(exc, NoCredentialsError | PartialCredentialsError) or error_code(exc) in _AUTH_CODES


def is_missing(exc: BaseException) -> bool:
    """SageMaker reports unknown names as ``ValidationException: Could not find ...``."""
    code = error_code(exc)
    message = error_message(exc).lower()
    return code in ("ResourceNotFound", "ResourceNotFoundException", "ValidationError", "ValidationException") and (
        "could not find" in message or "does not exist" in message or "not found" in message
    )


def translate(exc: BaseException, who: str, what: str) -> BackendError:
    """A botocore failure as our error naming the backend: ``AuthenticationError`` or ``BackendError``."""
    if is_auth_error(exc):
        return AuthenticationError(
            f"{who}: AWS refused the credentials for {what}: {error_message(exc)} (credentials come from the "
            "standard AWS chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, instance roles)"
        )
    return BackendError(f"{who}: {what} failed: {type(exc).__name__}: {error_message(exc)}")


# -- storage -------------------------------------------------------------------------------------------
def open_storage(target: Target, who: str) -> Any:
    """The ``s3://`` storage (mlops-sdk-s3) at the URI's ``bucket``: every byte moves through it."""
    from mlops_sdk.plugins import create_backend

    assert target.bucket is not None
    try:
        return create_backend("storage", target.bucket)
    except UnknownScheme as exc:
        raise MissingDependency(
            f"{who}: moving bytes to {target.bucket} needs the s3 storage plugin: pip install mlops-sdk-s3 "
            "(and keep 's3' in MLOPS_PLUGINS when that variable is set)"
        ) from exc


__all__ = [
    "MANAGED_BY",
    "SCHEME",
    "TAG_MANAGED",
    "Target",
    "check_image",
    "check_instance_type",
    "client",
    "error_code",
    "is_auth_error",
    "is_missing",
    "open_storage",
    "parse_uri",
    "session",
    "sm_name",
    "translate",
    "validate_name",
]


class SageMakerBackend:
    """What the SageMaker compute and deployer share: the parsed URI, one boto3 session, its clients, the S3 storage."""

    kind = "compute"  # or "deployer": names the backend in errors

    def __init__(self, uri: str, *, root: Path | str = ".") -> None:
        self.uri = uri
        self.root = Path(root)
        self.target = parse_uri(uri)
        self.who = f"{self.kind} {self.target.label}"
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._storage: Any = None

    @property
    def storage(self) -> Any:
        """The ``s3://`` storage at the URI's bucket (mlops-sdk-s3)."""
        if self._storage is None:
            self.target.require(f"sagemaker {self.kind}", "bucket")
            self._storage = open_storage(self.target, self.who)
        return self._storage

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            if self._session is None:
                self._session = session(self.target)
            self._clients[service] = client(self._session, service)
        return self._clients[service]
