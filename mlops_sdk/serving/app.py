"""The model server: an ASGI application (Starlette) around one loaded model version.

>>> app = create_app(ws.model("churn-clf").version(3), auth_token="s3cret")   # doctest: +SKIP

Endpoints:

* ``POST /invocations``: the request formats of MLflow's scoring server
  (``{"dataframe_split": …}``, ``{"dataframe_records": …}``,
  ``{"instances": …}``, ``{"inputs": …}`` as JSON, or ``text/csv``), answered
  ``{"predictions": [...]}``, so MLflow clients work unchanged.
* ``GET /health`` and ``GET /ping``: 200 once the model is loaded (no auth, for probes).
* ``GET /metadata``: model name, version, id, flavor and signature.
* ``GET /metrics``: Prometheus text format (requests by endpoint and status,
  latency histogram, errors by kind, rows predicted, micro-batch sizes, model info).

Errors are JSON ``{"error_code", "message", "request_id"}`` (MLflow's shape plus
the request id): 400 malformed request (bad JSON, unknown format, empty batch),
422 input that does not fit the signature (columns, dtypes, shape, NaN),
401 missing or wrong bearer token, 413 body over the limit, 415 unsupported
content type, 500 when the model raises (the traceback goes to the
``mlops_sdk.serving`` log under the request id; the server keeps serving).
Every response carries an ``X-Request-ID`` header.

Why Starlette rather than FastAPI: the server has five routes and validates
input against the model's own signature, not a pydantic schema, so FastAPI's
validation and OpenAPI layers would only add per-request cost and import time.

Predictions run in a thread pool, so the event loop keeps accepting requests
(and answering ``/health``) while the model works. With ``batching`` on, rows
of concurrent requests are stacked into one predict call (see :class:`Batching`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import json
import logging
import math
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from mlops_sdk.errors import InvalidValue, MlopsError

if TYPE_CHECKING:
    from mlops_sdk.model import ModelVersion
    from mlops_sdk.serving.inference_log import InferenceLog
    from mlops_sdk.signature import Signature

_orjson: Any
try:  # orjson is much faster for both directions; the json module is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

log = logging.getLogger("mlops_sdk.serving")

#: default request body limit (10 MiB)
DEFAULT_MAX_BODY = 10 * 1024 * 1024
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_ROUTES = frozenset({"/invocations", "/health", "/ping", "/metadata", "/metrics"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


@attrs.frozen
class Batching:
    """Adaptive micro-batching of concurrent requests (off unless passed to :func:`create_app`).

    A request is predicted at once when a predict slot is free, so a lone
    request waits for nothing. Requests that arrive while ``concurrency``
    predict calls are running queue up and go, stacked, into the next call
    (at most ``max_batch`` rows). ``max_wait_ms`` > 0 additionally holds a
    batch that is not full for up to that long to gather more rows
    (trading latency for throughput). If a stacked call raises, each request
    of the batch is predicted on its own, so one bad request fails alone.
    """

    max_batch: int = 64
    max_wait_ms: float = 0.0
    concurrency: int = 1

    def __attrs_post_init__(self) -> None:
        if isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise InvalidValue(f"max_batch must be an integer >= 1, got {self.max_batch!r}")
        if not isinstance(self.max_wait_ms, int | float) or not 0 <= self.max_wait_ms <= 1000:
            raise InvalidValue(f"max_wait_ms must be between 0 and 1000, got {self.max_wait_ms!r}")
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise InvalidValue(f"concurrency must be an integer >= 1, got {self.concurrency!r}")


class HTTPProblem(Exception):
    """A request the server refuses: HTTP ``status`` with ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _bad(message: str) -> HTTPProblem:
    return HTTPProblem(400, "BAD_REQUEST", message)


def _unfit(message: str) -> HTTPProblem:
    return HTTPProblem(422, "INVALID_INPUT", message)


# -- metrics ---------------------------------------------------------------------------------
def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        i = 0
        for i, bound in enumerate(self.buckets):  # noqa: B007 - i is the bucket found
            if value <= bound:
                break
        else:
            i = len(self.buckets)
        self.counts[i] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        sep = "," if labels else ""
        for bound, count in zip((*self.buckets, math.inf), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == math.inf else repr(float(bound))
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {running}')
        brace = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{brace} {self.total!r}")
        out.append(f"{name}_count{brace} {self.n}")
        return out


class Metrics:
    """Counters of one server process, written in the Prometheus text format (version 0.0.4).

    Updated only from the event loop thread, so no lock is needed. With several
    worker processes each has its own counters (scrape each, or run one worker).
    """

    def __init__(self, info: Mapping[str, str]) -> None:
        self.info = dict(info)
        self.started = time.time()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, _Histogram] = {}
        self.errors: dict[str, int] = {}
        self.rows = 0
        self.predict_calls = 0
        self.batch_sizes = _Histogram(tuple(float(b) for b in BATCH_BUCKETS))
        self.in_flight = 0

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        key = (endpoint, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get(endpoint)
        if hist is None:
            hist = self.latency[endpoint] = _Histogram(LATENCY_BUCKETS)
        hist.observe(seconds)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def render(self) -> str:
        lines = [
            "# HELP mlops_model_info The model version this server serves.",
            "# TYPE mlops_model_info gauge",
            "mlops_model_info{" + ",".join(f'{k}="{_escape(v)}"' for k, v in self.info.items()) + "} 1",
            "# HELP mlops_requests_total HTTP requests answered, by endpoint, method and status.",
            "# TYPE mlops_requests_total counter",
        ]
        for (endpoint, method, status), n in sorted(self.requests.items()):
            lines.append(f'mlops_requests_total{{endpoint="{endpoint}",method="{method}",status="{status}"}} {n}')
        lines += [
            "# HELP mlops_request_duration_seconds Time from request received to response ready.",
            "# TYPE mlops_request_duration_seconds histogram",
        ]
        for endpoint, hist in sorted(self.latency.items()):
            lines += hist.lines("mlops_request_duration_seconds", f'endpoint="{endpoint}"')
        lines += [
            "# HELP mlops_errors_total Refused or failed requests, by kind.",
            "# TYPE mlops_errors_total counter",
        ]
        for kind, n in sorted(self.errors.items()):
            lines.append(f'mlops_errors_total{{kind="{kind}"}} {n}')
        lines += [
            "# HELP mlops_predicted_rows_total Input rows predicted.",
            "# TYPE mlops_predicted_rows_total counter",
            f"mlops_predicted_rows_total {self.rows}",
            "# HELP mlops_predict_calls_total Calls into the model (a micro-batch is one call).",
            "# TYPE mlops_predict_calls_total counter",
            f"mlops_predict_calls_total {self.predict_calls}",
            "# HELP mlops_batch_rows Rows per call into the model.",
            "# TYPE mlops_batch_rows histogram",
            *self.batch_sizes.lines("mlops_batch_rows", ""),
            "# HELP mlops_requests_in_flight Requests being handled now.",
            "# TYPE mlops_requests_in_flight gauge",
            f"mlops_requests_in_flight {self.in_flight}",
            "# HELP mlops_start_time_seconds When this server started (Unix time).",
            "# TYPE mlops_start_time_seconds gauge",
            f"mlops_start_time_seconds {self.started!r}",
        ]
        return "\n".join(lines) + "\n"


# -- JSON ---------------------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(body: bytes, allow_nan: bool) -> Any:
    if allow_nan:
        return json.loads(body)  # accepts NaN / Infinity literals
    if _orjson is not None:
        return _orjson.loads(body)
    return json.loads(body, parse_constant=_reject_constant)


def _plain(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _dumps(payload: Any) -> bytes:
    if _orjson is not None:
        try:
            out: bytes = _orjson.dumps(payload, option=_orjson.OPT_SERIALIZE_NUMPY, default=_plain)
            return out
        except TypeError:
            pass  # e.g. a non-contiguous or object array: the slow path below copes
    return json.dumps(_finite(_jsonable(payload)), separators=(",", ":")).encode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return _jsonable(_plain(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def predictions_payload(predictions: Any) -> Any:
    """Model output as MLflow answers it: arrays and Series as lists, DataFrames as row records."""
    module = type(predictions).__module__.split(".")[0]
    name = type(predictions).__name__
    if module == "pandas" and name == "DataFrame":
        return predictions.to_dict(orient="records")
    if module == "pandas" and name == "Series":
        return predictions.to_numpy()
    if module == "torch":
        return predictions.detach().cpu().numpy()
    return predictions


def _json_response(status: int, payload: Any, request_id: str | None = None) -> Response:
    headers = {"X-Request-ID": request_id} if request_id else None
    return Response(_dumps(payload), status_code=status, media_type="application/json", headers=headers)


def _problem_response(problem: HTTPProblem, request_id: str) -> Response:
    payload = {"error_code": problem.code, "message": problem.message, "request_id": request_id}
    response = _json_response(problem.status, payload)
    if problem.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="mlops"'
    return response


# -- request parsing ----------------------------------------------------------------------------
def _n_rows(data: Any) -> int:
    if isinstance(data, Mapping):
        lengths = [len(v) for v in data.values() if isinstance(v, list)]
        if lengths and len(lengths) == len(data):
            return max(lengths)
        return 1  # a single row of scalars
    if isinstance(data, list):
        return len(data)
    return 1


def _extract(payload: Any, signature: Signature | None) -> Any:
    """The data of a decoded JSON request, in a form :func:`~mlops_sdk.signature.coerce` reads."""
    if not isinstance(payload, dict):
        raise _bad(
            f"the request body must be a JSON object with one of the keys {', '.join(FORMATS)}; "
            f"got a JSON {type(payload).__name__}"
        )
    keys = [k for k in FORMATS if k in payload]
    unknown = sorted(set(payload) - set(FORMATS) - {"params"})
    if unknown or len(keys) != 1:
        found = f"; unknown key(s): {', '.join(map(repr, unknown))}" if unknown else ""
        many = f"; got {len(keys)} of them" if len(keys) > 1 else ""
        raise _bad(f"the request needs exactly one of the keys {', '.join(FORMATS)}{many}{found}")
    if payload.get("params"):
        raise _bad("this model takes no 'params'; send only the input data")
    key = keys[0]
    data = payload[key]
    if key == "dataframe_split":
        data = _from_split(data, signature)
    elif key == "dataframe_records":
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise _bad("'dataframe_records' must be a list of objects (one per row, column name to value)")
    elif not isinstance(data, list | dict):
        raise _bad(f"{key!r} must be a list of rows or an object of column lists, got a JSON {type(data).__name__}")
    if isinstance(data, dict) and not data:
        raise _bad(f"empty batch: {key!r} holds no columns")
    if _n_rows(data) == 0:
        raise _bad(f"empty batch: {key!r} holds no rows")
    if signature is None:
        return _without_signature(data)
    return data


def _from_split(data: Any, signature: Signature | None) -> Any:
    if not isinstance(data, dict) or "data" not in data:
        raise _bad("'dataframe_split' must be an object with 'data' (a list of rows) and optionally 'columns'")
    extra = sorted(set(data) - {"columns", "data", "index"})
    if extra:
        raise _bad(f"'dataframe_split' has unknown key(s) {', '.join(map(repr, extra))} (allowed: columns, data, index)")
    rows, columns = data["data"], data.get("columns")
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _bad("'dataframe_split.data' must be a list of rows, each a list of values")
    if not rows:
        raise _bad("empty batch: 'dataframe_split.data' holds no rows")
    if columns is None:
        return rows
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise _bad("'dataframe_split.columns' must be a list of column names (strings)")
    width = len(columns)
    for n, row in enumerate(rows):
        if len(row) != width:
            raise _bad(f"'dataframe_split' row {n} has {len(row)} values for {width} columns")
    if len(set(columns)) != width:
        raise _unfit(f"duplicate column names in 'dataframe_split.columns': {columns}")
    if signature is not None and not signature.is_tabular:
        return rows
    return {c: [row[i] for row in rows] for i, c in enumerate(columns)}


def _without_signature(data: Any) -> Any:
    """A model logged without a signature gets a DataFrame for named columns, else an array."""
    import numpy as np

    if isinstance(data, dict) or (isinstance(data, list) and data and isinstance(data[0], dict)):
        import pandas as pd

        if isinstance(data, dict) and not all(isinstance(v, list) for v in data.values()):
            data = [data]
        return pd.DataFrame(data)
    try:
        return np.asarray(data)
    except ValueError as exc:
        raise _unfit(f"the input is not a regular array (rows of different lengths?): {exc}") from exc


def _parse_csv(body: bytes) -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas is there whenever tabular models are
        raise HTTPProblem(415, "UNSUPPORTED_MEDIA_TYPE", "CSV input needs pandas on the server") from exc
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except Exception as exc:  # pandas raises many kinds for malformed CSV
        raise _bad(f"the body is not valid CSV with a header row: {exc}") from exc
    if frame.empty:
        raise _bad("empty batch: the CSV holds no rows")
    return frame


def _nan_problem(data: Any) -> str | None:
    """Describe NaN / missing values in coerced model input, or None when there are none."""
    import numpy as np

    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        bad = [str(c) for c in data.columns if bool(data[c].isna().any())]
        if bad:
            return f"missing or NaN values in column(s) {', '.join(map(repr, bad))}"
        return None
    if isinstance(data, np.ndarray):
        if data.dtype.kind in "fc" and bool(np.isnan(data).any()):
            return "missing or NaN values in the input array"
        if data.dtype.kind == "O" and any(v is None or (isinstance(v, float) and math.isnan(v)) for v in data.ravel()):
            return "missing values in the input array"
    return None


def _has_missing(data: Any, depth: int = 0) -> bool:
    """Whether decoded request data holds a null or NaN (only asked once a request is refused)."""
    if data is None or (isinstance(data, float) and math.isnan(data)):
        return True
    if depth > 3:
        return False
    if isinstance(data, Mapping):
        return any(_has_missing(v, depth + 1) for v in data.values())
    if isinstance(data, list):
        return any(_has_missing(v, depth + 1) for v in data)
    if type(data).__module__.split(".")[0] == "pandas":
        return bool(data.isna().to_numpy().any())
    return False


def _n_model_rows(data: Any) -> int:
    shape = getattr(data, "shape", None)
    if shape:
        return int(shape[0])
    try:
        return len(data)
    except TypeError:
        return 1


def _rows_of(result: Any, start: int, stop: int) -> Any:
    module = type(result).__module__.split(".")[0]
    if module == "pandas":
        return result.iloc[start:stop]
    return result[start:stop]


def _stack(parts: list[Any]) -> Any:
    first = parts[0]
    if type(first).__module__.split(".")[0] == "pandas":
        import pandas as pd

        return pd.concat(parts, ignore_index=True)
    import numpy as np

    return np.concatenate(parts, axis=0)


# -- the application -----------------------------------------------------------------------------
@attrs.define
class _Pending:
    data: Any
    rows: int
    future: asyncio.Future[Any]
    since: float


class _Batcher:
    """Stacks the rows of concurrent requests into one predict call (see :class:`Batching`)."""

    def __init__(self, config: Batching, server: ModelServer) -> None:
        self.config = config
        self.server = server
        self.queue: list[_Pending] = []
        self.queued_rows = 0
        self.in_flight = 0
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def predict(self, data: Any, rows: int) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.append(_Pending(data, rows, future, asyncio.get_running_loop().time()))
        self.queued_rows += rows
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self.config.max_wait_ms / 1000
        while self.queue and self.in_flight < self.config.concurrency:
            full = self.queued_rows >= self.config.max_batch
            waited = loop.time() - self.queue[0].since
            if wait > 0 and not full and waited < wait:
                if self.timer is None:
                    self.timer = loop.call_later(wait - waited, self._fire)
                return
            batch: list[_Pending] = []
            rows = 0
            while self.queue and (not batch or rows + self.queue[0].rows <= self.config.max_batch):
                item = self.queue.pop(0)
                batch.append(item)
                rows += item.rows
            self.queued_rows -= rows
            self.in_flight += 1
            task = loop.create_task(self._run(batch))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _fire(self) -> None:
        self.timer = None
        self._dispatch()

    async def _run(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        metrics = self.server.metrics
        metrics.predict_calls += 1
        metrics.batch_sizes.observe(sum(item.rows for item in batch))
        try:
            try:
                results = await loop.run_in_executor(self.server.executor, self._predict_batch, batch)
            except Exception:
                results = None
            if results is None:  # stacked call failed or returned unsplittable output: one by one
                for item in batch:
                    try:
                        one = await loop.run_in_executor(self.server.executor, self.server.call_model, item.data)
                    except Exception as exc:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    else:
                        if not item.future.done():
                            item.future.set_result(one)
            else:
                for item, result in zip(batch, results, strict=True):
                    if not item.future.done():
                        item.future.set_result(result)
        finally:
            self.in_flight -= 1
            self._dispatch()

    def _predict_batch(self, batch: list[_Pending]) -> list[Any] | None:
        if len(batch) == 1:
            return [self.server.call_model(batch[0].data)]
        stacked = _stack([item.data for item in batch])
        result = self.server.call_model(stacked)
        if _n_model_rows(result) != len(stacked):
            return None
        out, start = [], 0
        for item in batch:
            out.append(_rows_of(result, start, start + item.rows))
            start += item.rows
        return out


class ModelServer:
    """One loaded model version and the state of the server around it (see :func:`create_app`)."""

    def __init__(
        self,
        model_version: ModelVersion,
        *,
        auth_token: str | None,
        max_body_bytes: int,
        batching: Batching | None,
        allow_nan: bool,
        threads: int,
        inference_log: InferenceLog | None = None,
    ) -> None:
        from mlops_sdk.flavors import get_flavor

        self.mv = model_version
        self.signature = model_version.signature
        self.model = model_version.load()  # never unpickles: ModelVersion.load refuses pickle by default
        self.flavor = get_flavor(model_version.flavor)
        self.auth_token = auth_token.encode() if auth_token else None
        self.max_body_bytes = max_body_bytes
        self.allow_nan = allow_nan
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mlops-predict")
        self.batcher = _Batcher(batching, self) if batching is not None else None
        self.inference_log = inference_log
        # the fast path of prepare(): a tabular signature whose columns all share one float dtype
        self._fast_names: list[str] | None = None
        self._fast_dtype: str | None = None
        columns = self.signature.columns if self.signature is not None else ()
        dtypes = {c.dtype for c in columns}
        if columns and len(dtypes) == 1 and dtypes <= {"float32", "float64"}:
            self._fast_names = [c.name for c in columns]
            self._fast_dtype = dtypes.pop()
        self.metrics = Metrics(
            {"name": model_version.name, "version": str(model_version.version), "id": model_version.id,
             "flavor": model_version.flavor}
        )
        self.metadata = {
            "name": model_version.name,
            "version": model_version.version,
            "id": model_version.id,
            "flavor": model_version.flavor,
            "signature": self.signature.to_dict() if self.signature is not None else None,
            "run_id": model_version.run_id,
            "batching": attrs.asdict(batching) if batching is not None else None,
        }

    # -- work done in the thread pool -----------------------------------------------------
    def prepare(self, body: bytes, content_type: str) -> Any:
        """Parse and check a request body; returns model input or raises :class:`HTTPProblem`."""
        from mlops_sdk.signature import coerce

        if content_type == "text/csv":
            data: Any = _parse_csv(body)
            if self.signature is not None and not self.signature.is_tabular:
                data = data.to_numpy()
        else:
            try:
                payload = _loads(body, self.allow_nan)
            except (ValueError, UnicodeDecodeError) as exc:
                raise _bad(f"the body is not valid JSON: {exc}") from exc
            fast = self._fast_frame(payload)
            if fast is not None:
                return fast
            data = _extract(payload, self.signature)
        if self.signature is not None:
            try:
                data = coerce(self.signature, data)
            except MlopsError as exc:  # SignatureMismatch, InvalidValue, MissingDependency
                hint = "; the input has missing (null / NaN) values" if _has_missing(data) else ""
                raise _unfit(f"{exc}{hint}") from exc
        if not self.allow_nan:
            problem = _nan_problem(data)
            if problem:
                raise _unfit(f"{problem}; this server does not accept missing values")
        return data

    def _fast_frame(self, payload: Any) -> Any:
        """The common case without the general checker: rows of plain numbers for all-float columns.

        Gives the same DataFrame :func:`~mlops_sdk.signature.coerce` would; returns None
        (the general path then runs, with its error messages) for anything else.
        """
        dtype, names = self._fast_dtype, self._fast_names
        if dtype is None or names is None or not isinstance(payload, dict) or len(payload) != 1:
            return None
        rows: Any = None
        if "dataframe_split" in payload:
            split = payload["dataframe_split"]
            if isinstance(split, dict) and split.get("columns") == names and set(split) <= {"columns", "data", "index"}:
                rows = split.get("data")
        elif "dataframe_records" in payload:
            records = payload["dataframe_records"]
            if isinstance(records, list) and all(isinstance(r, dict) and len(r) == len(names) for r in records):
                try:
                    rows = [[r[n] for n in names] for r in records]
                except KeyError:
                    return None
        else:
            rows = payload.get("instances", payload.get("inputs"))
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], list):
            return None
        import numpy as np

        try:
            array = np.array(rows)
        except (ValueError, TypeError):
            return None
        if array.ndim != 2 or array.shape[1] != len(names) or array.dtype.kind not in "biuf":
            return None
        array = array.astype(dtype, copy=False)
        if not self.allow_nan and bool(np.isnan(array).any()):
            return None
        import pandas as pd

        return pd.DataFrame(array, columns=list(names), copy=False)

    def call_model(self, data: Any) -> Any:
        return self.flavor.predict(self.model, data)

    def handle(self, body: bytes, content_type: str) -> tuple[Any, int, Any]:
        data = self.prepare(body, content_type)
        return self.call_model(data), _n_model_rows(data), data

    # -- endpoints ------------------------------------------------------------------------------
    def check_auth(self, request: Request) -> None:
        if self.auth_token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPProblem(401, "UNAUTHENTICATED", "this server needs an 'Authorization: Bearer <token>' header")
        if not hmac.compare_digest(token.strip().encode(), self.auth_token):
            raise HTTPProblem(401, "UNAUTHENTICATED", "the bearer token is not valid")

    async def read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise _bad("the Content-Length header is not a number")
            if int(declared) > self.max_body_bytes:
                raise HTTPProblem(
                    413, "REQUEST_TOO_LARGE",
                    f"the body has {int(declared)} bytes; this server accepts at most {self.max_body_bytes}",
                )
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise HTTPProblem(
                        413, "REQUEST_TOO_LARGE", f"the body is over this server's limit of {self.max_body_bytes} bytes"
                    )
                chunks.append(chunk)
        except ClientDisconnect:
            raise _bad("the client disconnected before sending the whole body") from None
        return b"".join(chunks)

    async def invocations(self, request: Request) -> Response:
        rid = request.scope["mlops.request_id"]
        metrics = self.metrics
        started = time.perf_counter()
        try:
            self.check_auth(request)
            raw_type = request.headers.get("content-type", "application/json")
            content_type = raw_type.split(";")[0].strip().lower() or "application/json"
            if content_type not in ("application/json", "text/csv"):
                raise HTTPProblem(
                    415, "UNSUPPORTED_MEDIA_TYPE",
                    f"content type {content_type!r} is not supported; send application/json or text/csv",
                )
            body = await self.read_body(request)
            if not body.strip():
                raise _bad("the request body is empty")
            loop = asyncio.get_running_loop()
            if self.batcher is None:
                result, rows, data = await loop.run_in_executor(self.executor, self.handle, body, content_type)
                metrics.predict_calls += 1
                metrics.batch_sizes.observe(rows)
            else:
                data = await loop.run_in_executor(self.executor, self.prepare, body, content_type)
                rows = _n_model_rows(data)
                result = await self.batcher.predict(data, rows)
        except HTTPProblem as problem:
            metrics.error({400: "bad_request", 401: "unauthenticated", 413: "too_large", 415: "media_type",
                           422: "invalid_input"}.get(problem.status, "refused"))
            return _problem_response(problem, rid)
        except Exception as exc:
            metrics.error("model")
            log.error("request %s: the model raised %s", rid, type(exc).__name__, exc_info=exc)
            return _problem_response(
                HTTPProblem(500, "INTERNAL_ERROR",
                            f"the model raised {type(exc).__name__}; the server log has the details "
                            f"under request id {rid}"),
                rid,
            )
        metrics.rows += rows
        if self.inference_log is not None:  # queues references only; a background thread writes
            self.inference_log.record(data, result, time.perf_counter() - started, rid)
        return _json_response(200, {"predictions": predictions_payload(result)})

    async def health(self, request: Request) -> Response:
        return _json_response(200, {"status": "ok"})

    async def get_metadata(self, request: Request) -> Response:
        try:
            self.check_auth(request)
        except HTTPProblem as problem:
            self.metrics.error("unauthenticated")
            return _problem_response(problem, request.scope["mlops.request_id"])
        return _json_response(200, self.metadata)

    async def get_metrics(self, request: Request) -> Response:
        try:
            self.check_auth(request)
        except HTTPProblem as problem:
            self.metrics.error("unauthenticated")
            return _problem_response(problem, request.scope["mlops.request_id"])
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


class _Observe:
    """Outermost ASGI layer: request ids, the ``X-Request-ID`` header, request metrics, last-resort 500."""

    def __init__(self, app: ASGIApp, server: ModelServer) -> None:
        self.app = app
        self.server = server

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                text = value.decode("latin-1")
                rid = text if _REQUEST_ID.fullmatch(text) else ""
                break
        rid = rid or uuid.uuid4().hex
        scope["mlops.request_id"] = rid
        status = 500
        started = False
        header = (b"x-request-id", rid.encode())

        async def send_wrapper(message: Any) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        metrics = self.server.metrics
        metrics.in_flight += 1
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            log.error("request %s failed", rid, exc_info=exc)
            metrics.error("internal")
            if not started:
                response = _problem_response(
                    HTTPProblem(500, "INTERNAL_ERROR", f"internal error; see the server log for request id {rid}"), rid
                )
                await response(scope, receive, send_wrapper)
        finally:
            metrics.in_flight -= 1
            path = scope.get("path", "")
            endpoint = path if path in _ROUTES else "other"
            metrics.request(endpoint, scope.get("method", ""), status, time.perf_counter() - start)


def create_app(
    model_version: ModelVersion,
    *,
    auth_token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    batching: Batching | bool | None = None,
    allow_nan: bool = False,
    threads: int | None = None,
    inference_log: InferenceLog | None = None,
) -> Starlette:
    """An ASGI application serving ``model_version`` (loaded now, through ``ModelVersion.load``).

    * ``auth_token``: when set, ``/invocations``, ``/metadata`` and ``/metrics`` need
      ``Authorization: Bearer <token>`` (``/health`` and ``/ping`` stay open for probes).
    * ``max_body_bytes``: larger request bodies get 413 (checked on the header and while reading).
    * ``batching``: ``True`` or a :class:`Batching` turns on adaptive micro-batching.
    * ``allow_nan``: pass NaN / missing values (and the JSON ``NaN`` literal) to the model
      instead of answering 422.
    * ``threads``: size of the prediction thread pool (default: CPU count, at most 4).

    * ``inference_log``: an :class:`~mlops_sdk.serving.inference_log.InferenceLog` recording
      sampled requests; by default one is made when ``MLOPS_INFERENCE_LOG`` names a deployment.

    The returned app has ``app.state.server`` (the :class:`ModelServer`: metrics, metadata).
    Loading failures raise here, before anything is served.
    """
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1:
        raise InvalidValue(f"max_body_bytes must be a positive integer, got {max_body_bytes!r}")
    if auth_token is not None and (not isinstance(auth_token, str) or not auth_token.strip()):
        raise InvalidValue("auth_token must be a non-empty string (or None for no authentication)")
    if batching is True:
        batching = Batching()
    elif batching is False:
        batching = None
    if batching is not None and not isinstance(batching, Batching):
        raise InvalidValue(f"batching must be True, False, None or a Batching, got {type(batching).__name__}")
    if threads is None:
        threads = min(4, os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidValue(f"threads must be a positive integer, got {threads!r}")
    if inference_log is None and os.environ.get("MLOPS_INFERENCE_LOG"):
        from mlops_sdk.serving.inference_log import InferenceLog as _Log

        inference_log = _Log.from_env(lambda: model_version.workspace.storage, model_version.version)
    server = ModelServer(
        model_version,
        auth_token=auth_token,
        max_body_bytes=max_body_bytes,
        batching=batching,
        allow_nan=allow_nan,
        threads=threads,
        inference_log=inference_log,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            server.executor.shutdown(wait=False, cancel_futures=True)
            if server.inference_log is not None:
                server.inference_log.close()  # write what is queued: nothing is lost on shutdown

    app = Starlette(
        routes=[
            Route("/invocations", server.invocations, methods=["POST"]),
            Route("/health", server.health, methods=["GET"]),
            Route("/ping", server.health, methods=["GET"]),
            Route("/metadata", server.get_metadata, methods=["GET"]),
            Route("/metrics", server.get_metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.server = server
    app.add_middleware(_ObserveMiddleware, server=server)
    return app


class _ObserveMiddleware(_Observe):
    """:class:`_Observe` in the shape Starlette's ``add_middleware`` builds (``cls(app, **kwargs)``)."""

    def __init__(self, app: ASGIApp, server: ModelServer) -> None:
        super().__init__(app, server)


__all__ = ["DEFAULT_MAX_BODY", "Batching", "HTTPProblem", "Metrics", "ModelServer", "create_app"]
