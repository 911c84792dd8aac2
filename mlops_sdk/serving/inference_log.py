"""The inference log: sampled requests, predictions, latency and time, written to workspace storage.

The model server calls :meth:`InferenceLog.record` after each successful
prediction. Recording only appends references to a bounded queue (no
conversion, no I/O on the request path); a background thread turns them into
JSON lines and writes one chunk per flush interval to storage under
``inference/<deployment>/<YYYY-MM-DD>/<time>-<uuid>.jsonl``. ``close()``
(called on server shutdown, including SIGTERM) writes what is left.

Each line: the input columns of one row, ``prediction``, ``timestamp`` (UTC,
ISO 8601), ``latency_ms``, ``model_version`` and ``request_id``.

The server turns the log on for a deployment when ``MLOPS_INFERENCE_LOG`` names
it (the ``local`` deployer sets it); ``MLOPS_LOG_SAMPLE_RATE`` (0..1, default 1)
keeps that share of requests.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import queue
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlops_sdk.errors import InvalidValue
from mlops_sdk.validation import validate_name

if TYPE_CHECKING:
    from mlops_sdk.storage.base import Storage

log = logging.getLogger("mlops_sdk.serving")

PREFIX = "inference"
ENV_NAME = "MLOPS_INFERENCE_LOG"
ENV_RATE = "MLOPS_LOG_SAMPLE_RATE"
META_COLUMNS = ("prediction", "timestamp", "latency_ms", "model_version", "request_id")


def prefix_for(deployment: str) -> str:
    """The storage prefix of a deployment's log (``inference/<name>/``)."""
    return f"{PREFIX}/{validate_name('deployment name', deployment)}/"


def check_rate(rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= float(rate) <= 1.0:
        raise InvalidValue(f"log_sample_rate must be a number from 0 to 1, got {rate!r}")
    return float(rate)


class InferenceLog:
    """Batches sampled predictions into JSONL chunks in ``storage`` from a background thread."""

    def __init__(
        self,
        storage: Storage,
        deployment: str,
        *,
        model_version: int | None = None,
        sample_rate: float = 1.0,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
    ) -> None:
        self.storage = storage
        self.prefix = prefix_for(deployment)
        self.model_version = model_version
        self.sample_rate = check_rate(sample_rate)
        self.flush_interval = flush_interval
        self.dropped = 0
        self.written_rows = 0
        self._queue: queue.Queue[tuple[Any, Any, float, float, str] | None] = queue.Queue(max_queue)
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="mlops-inference-log", daemon=True)
        self._thread.start()

    @classmethod
    def from_env(cls, storage_factory: Any, model_version: int | None) -> InferenceLog | None:
        """The log the environment asks for (``MLOPS_INFERENCE_LOG``), or None."""
        name = os.environ.get(ENV_NAME, "").strip()
        if not name:
            return None
        try:
            rate = float(os.environ.get(ENV_RATE, "1") or "1")
        except ValueError as exc:
            raise InvalidValue(f"{ENV_RATE} must be a number from 0 to 1") from exc
        return cls(storage_factory(), name, model_version=model_version, sample_rate=rate)

    # -- request path: cheap ------------------------------------------------------------------
    def record(self, data: Any, predictions: Any, latency_s: float, request_id: str = "") -> None:
        """Queue one request's input and output (sampled; never blocks, never raises)."""
        if self._closed or (self.sample_rate < 1.0 and random.random() >= self.sample_rate):
            return
        try:
            self._queue.put_nowait((data, predictions, latency_s, time.time(), request_id))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("inference log queue full: %d record(s) dropped so far", self.dropped)

    # -- background thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        pending: list[tuple[Any, Any, float, float, str]] = []
        deadline = time.monotonic() + self.flush_interval
        stop = False
        while not stop:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                if item is None:
                    stop = True
                else:
                    pending.append(item)
            except queue.Empty:
                pass
            if stop or time.monotonic() >= deadline or len(pending) >= 1000:
                if pending:
                    self._write(pending)
                    pending = []
                deadline = time.monotonic() + self.flush_interval

    def _write(self, items: list[tuple[Any, Any, float, float, str]]) -> None:
        lines: list[str] = []
        for data, predictions, latency, ts, rid in items:
            try:
                lines.extend(self._lines(data, predictions, latency, ts, rid))
            except Exception as exc:  # one odd request must not lose the others
                log.warning("inference log: cannot record request %s: %r", rid, exc)
        if not lines:
            return
        now = _dt.datetime.now(_dt.UTC)
        key = f"{self.prefix}{now:%Y-%m-%d}/{now:%H%M%S%f}-{uuid.uuid4().hex[:12]}.jsonl"
        body = ("\n".join(lines) + "\n").encode()
        for attempt in range(3):
            try:
                self.storage.put_bytes(key, body)
                self.written_rows += len(lines)
                return
            except Exception as exc:
                if attempt == 2:
                    log.error("inference log: writing %d row(s) to %s failed: %r", len(lines), key, exc)
                time.sleep(0.2 * (attempt + 1))

    def _lines(self, data: Any, predictions: Any, latency: float, ts: float, rid: str) -> Iterator[str]:
        rows = _rows(data)
        preds = _to_list(predictions)
        stamp = _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat()
        for i, row in enumerate(rows):
            record = dict(row)
            record["prediction"] = preds[i] if i < len(preds) else None
            record["timestamp"] = stamp
            record["latency_ms"] = round(latency * 1000, 3)
            record["model_version"] = self.model_version
            record["request_id"] = rid
            yield json.dumps(_clean(record), separators=(",", ":"))

    def flush(self, timeout: float = 10.0) -> None:
        """Write everything queued so far (used by close)."""
        self.close(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop accepting records and write what is queued; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)


def _to_list(value: Any) -> list[Any]:
    module = type(value).__module__.split(".")[0]
    if module == "pandas":
        if type(value).__name__ == "DataFrame":
            return list(value.to_dict(orient="records"))
        return list(value.tolist())
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        out = tolist()
        return out if isinstance(out, list) else [out]
    return list(value) if isinstance(value, list | tuple) else [value]


def _rows(data: Any) -> list[dict[str, Any]]:
    module = type(data).__module__.split(".")[0]
    if module == "pandas" and type(data).__name__ == "DataFrame":
        return [{str(k): v for k, v in r.items()} for r in data.to_dict(orient="records")]
    rows = _to_list(data)
    out: list[dict[str, Any]] = []
    for row in rows:
        if isinstance(row, dict):
            out.append({str(k): v for k, v in row.items()})
        elif isinstance(row, list | tuple):
            out.append({str(i): v for i, v in enumerate(row)})
        else:
            out.append({"0": row})
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        return _clean(item())
    return str(value)


def read_log(storage: Storage, deployment: str, since: _dt.datetime | str | None = None) -> Any:
    """A deployment's inference log as a pandas DataFrame (rows in time order)."""
    import pandas as pd

    since_dt = _as_datetime(since)
    prefix = prefix_for(deployment)
    keys = sorted(storage.list(prefix))
    if since_dt is not None:
        day = since_dt.strftime("%Y-%m-%d")
        keys = [k for k in keys if k[len(prefix):len(prefix) + 10] >= day]
    records: list[dict[str, Any]] = []
    for key in keys:
        if not key.endswith(".jsonl"):
            continue
        for line in storage.get_bytes(key).decode().splitlines():
            if line.strip():
                records.append(json.loads(line))
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return pd.DataFrame(columns=list(META_COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    if since_dt is not None:
        frame = frame[frame["timestamp"] >= pd.Timestamp(since_dt)]
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _as_datetime(since: _dt.datetime | str | None) -> _dt.datetime | None:
    if since is None:
        return None
    if isinstance(since, str):
        try:
            since = _dt.datetime.fromisoformat(since)
        except ValueError as exc:
            raise InvalidValue(f"since must be a datetime or an ISO 8601 string, got {since!r}") from exc
    if not isinstance(since, _dt.datetime):
        raise InvalidValue(f"since must be a datetime or an ISO 8601 string, got {since!r}")
    if since.tzinfo is None:
        since = since.astimezone()
    return since.astimezone(_dt.UTC)


__all__ = ["ENV_NAME", "ENV_RATE", "META_COLUMNS", "InferenceLog", "prefix_for", "read_log"]
