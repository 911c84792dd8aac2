"""A recorded-response transport for the Azure ML SDK: Azure ML has no emulator.

What this is, honestly: the responses it serves are *shaped after the public
Azure ML REST API* (ARM ``Microsoft.MachineLearningServices`` 2024/2025 api
versions: workspaces, jobs, datastores, models, online endpoints and
deployments, ARM long-running operations) and the Blob REST API, written from
the API reference. They are not captures from a live workspace. The
fixed parts live in ``tests/recordings/*.json``; resources the plugin creates
are kept in memory, so a whole sequence works: a PUT is echoed back (with
``id``, ``name``, ``type`` and ``provisioningState``), later GETs return it,
DELETE removes it, and list calls return what is there.

The real ``azure.ai.ml.MLClient`` (and ``azure.storage.blob``) run unchanged on
top of it: :class:`RecordedTransport` is an azure-core ``RequestsTransport``
whose ``requests`` session has one adapter that answers every request here
instead of opening a socket. Every request is recorded (method, URL,
api-version, JSON body) so tests assert on exactly what the plugin sent.

Long-running operations go the ARM way: a PUT answers 201 with an
``Azure-AsyncOperation`` header, the SDK polls that URL and gets ``Succeeded``
(or ``Failed``, when a test scripted it with :meth:`fail_provisioning`); a
DELETE or a job cancel answers 202 with a ``Location`` header that resolves.

An unknown request fails loudly: :class:`UnrecordedRequest` names it. Hosts
other than ARM and the recorded storage account are refused the same way.
"""

from __future__ import annotations

import copy
import io
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
import requests
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

RECORDINGS = Path(__file__).parent / "recordings"
ARM_HOST = "management.azure.com"
PROVIDER = "/providers/Microsoft.MachineLearningServices/workspaces/"
BLOB_SUFFIX = ".blob.core.windows.net"

_TYPES = {
    "jobs": "Microsoft.MachineLearningServices/workspaces/jobs",
    "onlineEndpoints": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
    "deployments": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
    "models": "Microsoft.MachineLearningServices/workspaces/models",
    "versions": "Microsoft.MachineLearningServices/workspaces/models/versions",
    "datastores": "Microsoft.MachineLearningServices/workspaces/datastores",
    "environments": "Microsoft.MachineLearningServices/workspaces/environments",
}


class UnrecordedRequest(AssertionError):
    """The plugin sent a request this transport has no recorded answer for."""


class FakeCredential:
    """A token credential that hands out a static token: no network, no secret."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("recorded-test-token", int(time.time()) + 3600)


@attrs.frozen
class Recorded:
    """One request as the transport saw it."""

    method: str
    url: str
    host: str
    path: str
    api_version: str | None
    body: Any  # parsed JSON, raw bytes, or None
    headers: Mapping[str, str]

    @property
    def resource(self) -> str:
        """The path below the workspace (``jobs/NAME``, ``onlineEndpoints/E/deployments/blue``…)."""
        _, _, rest = self.path.partition(PROVIDER)
        return rest.partition("/")[2]


@attrs.define
class _Rule:
    method: str
    pattern: re.Pattern[str]
    responses: list[dict[str, Any]]
    times: int | None  # None: forever (the last response repeats)
    used: int = 0


def _response(req: requests.PreparedRequest, status: int, body: Any = None,
              headers: Mapping[str, str] | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    if body is None:
        data = b""
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
    hdrs = CaseInsensitiveDict(
        {"x-ms-request-id": str(uuid.uuid4()), "Content-Length": str(len(data))}
    )
    if body is not None and not isinstance(body, bytes):
        hdrs["Content-Type"] = "application/json; charset=utf-8"
    hdrs.update(headers or {})
    resp.headers = hdrs
    resp._content = data
    resp.raw = io.BytesIO(data)
    resp.url = req.url or ""
    resp.request = req
    resp.reason = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}.get(status, "Error")
    return resp


def _merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


class _Adapter(BaseAdapter):
    def __init__(self, transport: RecordedTransport) -> None:
        super().__init__()
        self.transport = transport

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        return self.transport._answer(request)

    def close(self) -> None:
        pass


class RecordedTransport(RequestsTransport):  # type: ignore[misc]
    """Serves recorded and in-memory ARM / Blob responses; records every request."""

    def __init__(self, storage_account: str = "mlopsrecorded") -> None:
        session = requests.Session()
        self._adapter = _Adapter(self)
        session.mount("https://", self._adapter)
        session.mount("http://", self._adapter)
        super().__init__(session=session, session_owner=False)
        self.storage_account = storage_account
        self.requests: list[Recorded] = []
        self.resources: dict[str, dict[str, Any]] = {}  # lower-case ARM path -> resource
        self.blobs: dict[str, bytes] = {}  # "container/blob/path" -> bytes
        self.operations: dict[str, dict[str, Any]] = {}
        self._rules: list[_Rule] = []
        self._provision_failures: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- scripting --------------------------------------------------------------------------
    def load(self, name: str, **values: str) -> None:
        """Add the recorded responses of ``recordings/NAME.json`` (``{sub}`` etc. filled from ``values``)."""
        text = (RECORDINGS / f"{name}.json").read_text()
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        doc = json.loads(text)
        for item in doc.get("seed", []):
            self.resources[item["path"].lower()] = item["body"]
        for item in doc.get("responses", []):
            self.respond(item["method"], item["path"], item["responses"], times=item.get("times"))

    def respond(self, method: str, path_regex: str, responses: list[dict[str, Any]],
                times: int | None = None) -> None:
        """Answer ``method`` on paths matching ``path_regex`` with ``responses`` in turn.

        A response is ``{"status": 200, "body": {...}, "headers": {...}}``, or
        ``{"patch": {...}}``: merge into the stored resource and return it.
        """
        self._rules.append(_Rule(method.upper(), re.compile(path_regex, re.I), responses, times))

    def fail_provisioning(self, path_suffix: str, message: str) -> None:
        """The next PUT of the resource ending in ``path_suffix`` provisions to ``Failed``."""
        self._provision_failures[path_suffix.lower()] = message

    def put_blob(self, container: str, path: str, data: bytes) -> None:
        self.blobs[f"{container}/{path}"] = data

    # -- views for the tests ----------------------------------------------------------------
    def sent(self, method: str | None = None, contains: str = "") -> list[Recorded]:
        """Recorded requests, optionally only one method and whose path contains ``contains``."""
        return [
            r for r in self.requests
            if (method is None or r.method == method) and contains.lower() in r.path.lower()
        ]

    def clear(self) -> None:
        self.requests.clear()

    # -- answering --------------------------------------------------------------------------
    def _answer(self, req: requests.PreparedRequest) -> requests.Response:
        parts = urlsplit(req.url or "")
        host = (parts.hostname or "").lower()
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        raw = req.body
        if isinstance(raw, str):
            raw = raw.encode()
        if raw is not None and not isinstance(raw, bytes):  # a stream
            raw = raw.read() if hasattr(raw, "read") else b"".join(raw)
        body: Any = raw
        if raw and "json" in str(req.headers.get("Content-Type", "")):
            body = json.loads(raw)
        # the token or endpoint key itself is never kept, only whether one was sent
        headers = {k: v for k, v in req.headers.items() if k.lower() != "authorization"}
        headers["has-authorization"] = "yes" if req.headers.get("Authorization") else "no"
        rec = Recorded(
            method=str(req.method), url=str(req.url), host=host, path=path,
            api_version=(query.get("api-version") or [None])[0], body=body, headers=headers,
        )
        with self._lock:
            self.requests.append(rec)
            if host == ARM_HOST:
                return self._arm(req, rec)
            if host == f"{self.storage_account}{BLOB_SUFFIX}":
                return self._blob(req, rec, raw or b"")
            if host.endswith(".inference.ml.azure.com"):
                return self._rule(req, rec) or self._unrecorded(rec)
        return self._unrecorded(rec)

    def _unrecorded(self, rec: Recorded) -> requests.Response:
        raise UnrecordedRequest(
            f"no recorded response for {rec.method} {rec.url}"
            + (f" with body {json.dumps(rec.body)[:300]}" if isinstance(rec.body, dict) else "")
        )

    def _rule(self, req: requests.PreparedRequest, rec: Recorded) -> requests.Response | None:
        for rule in self._rules:
            if rule.method != rec.method or not rule.pattern.search(rec.path):
                continue
            if rule.times is not None and rule.used >= rule.times:
                continue
            reply = rule.responses[min(rule.used, len(rule.responses) - 1)]
            rule.used += 1
            if "patch" in reply:
                stored = self.resources.get(rec.path.lower())
                if stored is None:
                    return _response(req, 404, _not_found(rec.path))
                _merge(stored, reply["patch"])
                return _response(req, 200, stored)
            return _response(req, reply.get("status", 200), reply.get("body"), reply.get("headers"))
        return None

    def _arm(self, req: requests.PreparedRequest, rec: Recorded) -> requests.Response:
        scripted = self._rule(req, rec)
        if scripted is not None:
            return scripted
        key = rec.path.lower()
        if "/mfeoperationstatus/" in key or "/mfeoperationresults/" in key:
            return self._operation(req, rec)
        if PROVIDER.lower() not in key:
            return self._unrecorded(rec)
        segments = rec.resource.split("/")
        if rec.method == "PUT" and len(segments) % 2 == 0 and segments[-2] in _TYPES:
            return self._put(req, rec, segments)
        if rec.method == "GET":
            if key in self.resources:
                return _response(req, 200, self.resources[key])
            if len(segments) % 2 == 1 and segments[-1] in _TYPES:  # a collection
                prefix = key + "/"
                items = [
                    v for k, v in sorted(self.resources.items())
                    if k.startswith(prefix) and "/" not in k[len(prefix):]
                ]
                return _response(req, 200, {"value": items})
            if len(segments) % 2 == 0 and segments[-2] in _TYPES:
                return _response(req, 404, _not_found(rec.path))
        if rec.method == "DELETE" and len(segments) % 2 == 0 and segments[-2] in _TYPES:
            if key not in self.resources:
                return _response(req, 204)
            for k in [k for k in self.resources if k == key or k.startswith(key + "/")]:
                del self.resources[k]
            return self._accepted(req, rec, {"status": "Succeeded"})
        if rec.method == "POST" and segments[-1] == "cancel" and segments[0] == "jobs":
            job = self.resources.get(key.rsplit("/", 1)[0])
            if job is None:
                return _response(req, 404, _not_found(rec.path))
            job["properties"]["status"] = "Canceled"
            return self._accepted(req, rec, {"status": "Succeeded"})
        return self._unrecorded(rec)

    def _put(self, req: requests.PreparedRequest, rec: Recorded, segments: list[str]) -> requests.Response:
        key = rec.path.lower()
        kind = segments[-2]
        body = copy.deepcopy(rec.body) if isinstance(rec.body, dict) else {}
        existed = key in self.resources
        resource: dict[str, Any] = {
            **body,
            "id": rec.path,
            "name": segments[-1],
            "type": _TYPES[kind],
            "systemData": {
                "createdAt": "2024-05-01T00:00:00Z", "createdBy": "recorded", "createdByType": "User",
                "lastModifiedAt": "2024-05-01T00:00:00Z", "lastModifiedBy": "recorded",
                "lastModifiedByType": "User",
            },
        }
        props = resource.setdefault("properties", {})
        if kind == "jobs":
            props.setdefault("status", "NotStarted")
            props.setdefault("services", {})
            self.resources[key] = resource
            return _response(req, 200 if existed else 201, resource)
        if kind == "versions":  # the service fills these in
            props.setdefault("flavors", {})
            props.setdefault("stage", "Development")
        if kind not in ("onlineEndpoints", "deployments"):
            props["provisioningState"] = "Succeeded"
            self.resources[key] = resource
            return _response(req, 200 if existed else 201, resource)
        # online endpoints and deployments: an ARM long-running operation
        failure = next((m for s, m in self._provision_failures.items() if key.endswith(s)), None)
        if failure is not None:
            self._provision_failures = {s: m for s, m in self._provision_failures.items() if not key.endswith(s)}
        if kind == "onlineEndpoints":
            old = self.resources.get(key, {}).get("properties", {})
            props.setdefault("traffic", old.get("traffic", {}))
            name = segments[-1]
            props["scoringUri"] = f"https://{name}.eastus.inference.ml.azure.com/score"
            props["swaggerUri"] = f"https://{name}.eastus.inference.ml.azure.com/swagger.json"
        if kind == "deployments":  # what the service fills in when the request leaves it out
            props.setdefault("scaleSettings", {"scaleType": "Default"})
            props.setdefault("requestSettings", {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 1})
            probe = {"failureThreshold": 30, "successThreshold": 1, "timeout": "PT2S", "period": "PT10S",
                     "initialDelay": "PT10S"}
            props.setdefault("livenessProbe", probe)
            props.setdefault("readinessProbe", probe)
        props["provisioningState"] = "Updating" if existed else "Creating"
        self.resources[key] = resource
        result: dict[str, Any] = {"status": "Succeeded"}
        final = "Succeeded"
        if failure is not None:
            final = "Failed"
            result = {"status": "Failed", "error": {"code": "DeploymentFailed", "message": failure}}
        op = self._operation_url(rec, result, on_done=lambda: props.__setitem__("provisioningState", final))
        return _response(req, 200 if existed else 201, resource,
                         {"Azure-AsyncOperation": op, "Retry-After": "0"})

    def _operation_url(self, rec: Recorded, result: dict[str, Any], on_done: Callable[[], None] | None = None) -> str:
        sub = rec.path.split("/")[2]
        op_id = str(uuid.uuid4())
        self.operations[op_id] = {"result": result, "on_done": on_done}
        return (f"https://{ARM_HOST}/subscriptions/{sub}/providers/Microsoft.MachineLearningServices/"
                f"locations/eastus/mfeOperationStatus/{op_id}?api-version=2024-04-01")

    def _accepted(self, req: requests.PreparedRequest, rec: Recorded, result: dict[str, Any]) -> requests.Response:
        url = self._operation_url(rec, result).replace("mfeOperationStatus", "mfeOperationResults")
        return _response(req, 202, None, {"Location": url, "Retry-After": "0"})

    def _operation(self, req: requests.PreparedRequest, rec: Recorded) -> requests.Response:
        op_id = rec.path.rsplit("/", 1)[-1]
        op = self.operations.get(op_id)
        if op is None:
            return self._unrecorded(rec)
        if op.get("on_done"):
            op.pop("on_done")()
        if "mfeOperationResults" in rec.path:
            return _response(req, 200, {})
        return _response(req, 200, {"id": rec.path, "name": op_id, **op["result"]})

    def _blob(self, req: requests.PreparedRequest, rec: Recorded, raw: bytes) -> requests.Response:
        scripted = self._rule(req, rec)
        if scripted is not None:
            return scripted
        key = rec.path.lstrip("/")
        if rec.method == "PUT" and req.headers.get("x-ms-blob-type") == "BlockBlob":
            self.blobs[key] = raw
            return _response(req, 201, None, {"ETag": '"0x1"', "Last-Modified": "Wed, 01 May 2024 00:00:00 GMT"})
        if rec.method in ("GET", "HEAD"):
            if key not in self.blobs:
                return _response(req, 404, None, {"x-ms-error-code": "BlobNotFound"})
            data = self.blobs[key]
            headers = {
                "Content-Type": "application/octet-stream", "ETag": '"0x1"', "x-ms-blob-type": "BlockBlob",
                "Last-Modified": "Wed, 01 May 2024 00:00:00 GMT",
                "Content-Range": f"bytes 0-{max(len(data) - 1, 0)}/{len(data)}",
            }
            return _response(req, 206 if "x-ms-range" in req.headers or "Range" in req.headers else 200,
                             data if rec.method == "GET" else b"", {**headers, "Content-Length": str(len(data))})
        return self._unrecorded(rec)


def _not_found(path: str) -> dict[str, Any]:
    return {"error": {"code": "ResourceNotFound", "message": f"The resource {path.rsplit('/', 1)[-1]!r} was not found."}}


# The workspace the tests talk to (made-up names; the subscription id is a well-formed GUID).
SUBSCRIPTION = "00000000-0000-0000-0000-00000000a2e1"
RESOURCE_GROUP = "rg-mlops-tests"
WORKSPACE = "mlops-ws"
ACCOUNT = "mlopsrecorded"
TARGET = f"azureml://{SUBSCRIPTION}/{RESOURCE_GROUP}/{WORKSPACE}"
NAMES = {"sub": SUBSCRIPTION, "rg": RESOURCE_GROUP, "ws": WORKSPACE, "account": ACCOUNT}


def workspace_transport() -> RecordedTransport:
    """A transport that knows the test workspace and its default datastore (``recordings/workspace.json``)."""
    transport = RecordedTransport(ACCOUNT)
    transport.load("workspace", **NAMES)
    return transport


def client_options(transport: RecordedTransport) -> dict[str, Any]:
    """What a backend passes to ``MLClient``: this transport, and no retries (a refusal is final)."""
    return {"transport": transport, "retry_total": 0}


__all__ = [
    "ACCOUNT",
    "NAMES",
    "TARGET",
    "FakeCredential",
    "Recorded",
    "RecordedTransport",
    "UnrecordedRequest",
    "client_options",
    "workspace_transport",
]
