"""The MLflow tracking backend: mlops-sdk experiments and runs on an MLflow tracking server.

``Workspace.open(tracking="mlflow+http://host:5000")`` stores everything
through :class:`mlflow.tracking.MlflowClient`, so MLflow's UI and API see the
runs as their own: experiments are MLflow experiments, runs are MLflow runs
(name, status, start and end time, parent through the ``mlflow.parentRunId``
tag so the UI nests them), params, metrics (``log_batch`` in chunks within
MLflow's limits) and tags. See :mod:`mlops_sdk_mlflow.codec` for how values
are encoded, :mod:`mlops_sdk_mlflow.filters` for searching, and the README's
"Limits" section for what MLflow cannot store exactly.

Artifact *files* stay in the workspace's own storage. The run records which
files it has (path, size, digest) in one JSON artifact, ``mlops/artifacts.json``,
and where it ran (git, Python, packages…) in ``mlops/context.json``; nothing
else is uploaded.

MLflow is imported when a store is created, never when the plugin loads.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from mlops_sdk.errors import (
    BackendError,
    ExperimentNotFound,
    InvalidValue,
    MissingDependency,
    MlopsError,
    RunNotFound,
)
from mlops_sdk.query import Expr, OrderKey, matches
from mlops_sdk.records import (
    ArtifactEntry,
    ExperimentInfo,
    Metric,
    RunRecord,
    RunStatus,
    WriteBatch,
)
from mlops_sdk.redact import redact_uri
from mlops_sdk.tracking.base import TrackingStore, TransientError

from mlops_sdk_mlflow import codec
from mlops_sdk_mlflow.filters import mlflow_order, order_records, to_mlflow_filter
from mlops_sdk_mlflow.uris import is_http, to_mlflow_uri

ARTIFACTS_FILE = "mlops/artifacts.json"
CONTEXT_FILE = "mlops/context.json"
PAGE_SIZE = 1000
_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_EXPERIMENT_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,63}$")
_TRANSIENT_CODES = frozenset(
    {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED", "ABORTED"}
)
_PASSWORD_IN_URL = re.compile(r"://([^/@\s:]+):[^/@\s]+@")
_STATUS_FROM_MLFLOW = {
    "RUNNING": RunStatus.RUNNING,
    "SCHEDULED": RunStatus.RUNNING,
    "FINISHED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "KILLED": RunStatus.KILLED,
}


def _import_mlflow() -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise MissingDependency(
            f"the MLflow tracking backend needs MLflow ({exc}): pip install mlops-sdk-mlflow"
        ) from exc
    return MlflowClient


class _LazyContext(Mapping[str, Any]):
    """A run's context, read from its ``mlops/context.json`` artifact on first use.

    Searching returns many runs; downloading every context up front would cost
    one request per run for something rarely looked at.
    """

    def __init__(self, load: Callable[[], dict[str, Any]]) -> None:
        self._load = load
        self._data: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _get(self) -> dict[str, Any]:
        if self._data is None:
            with self._lock:
                if self._data is None:
                    self._data = self._load()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(self._data) if self._data is not None else "<context, read on first use>"


class MlflowTrackingStore(TrackingStore):
    """A :class:`~mlops_sdk.tracking.base.TrackingStore` on an MLflow tracking server.

    >>> store = MlflowTrackingStore("mlflow+http://127.0.0.1:5000")   # doctest: +SKIP
    """

    def __init__(self, uri: str, *, root: Path | str = ".", check_connection: bool = True) -> None:
        self.uri = redact_uri(uri)
        self.tracking_uri = to_mlflow_uri(uri)
        self.server = redact_uri(self.tracking_uri)
        client_class = _import_mlflow()
        try:
            self._client = client_class(tracking_uri=self.tracking_uri)
        except Exception as exc:
            self._fail(exc, "connecting")
        self._manifest_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        if check_connection and is_http(self.tracking_uri):
            self._ping()

    # -- errors ---------------------------------------------------------------------------
    def _ping(self) -> None:
        """Fail at open, quickly, when nothing answers at the server's address."""
        import requests

        try:
            requests.get(f"{self.tracking_uri}/health", timeout=(10, 30))
        except requests.RequestException as exc:
            reason = _PASSWORD_IN_URL.sub(r"://\1:***@", str(exc))
            raise BackendError(
                f"cannot reach the MLflow tracking server at {self.server} ({type(exc).__name__}: "
                f"{reason}). Is `mlflow server` running there?"
            ) from exc

    def _fail(self, exc: BaseException, action: str) -> NoReturn:
        """Raise ``exc`` as an mlops-sdk error naming the server."""
        if isinstance(exc, MlopsError):
            raise exc
        message = _PASSWORD_IN_URL.sub(r"://\1:***@", getattr(exc, "message", None) or str(exc))
        code = getattr(exc, "error_code", None)
        text = f"MLflow tracking server {self.server}: {action} failed: {message}"
        if code in _TRANSIENT_CODES or _is_connection_error(exc):
            raise TransientError(text) from exc
        if isinstance(exc, ImportError):
            raise MissingDependency(
                f"{text} (a package MLflow needs for this URI is missing)"
            ) from exc
        raise BackendError(text) from exc

    @contextlib.contextmanager
    def _calling(
        self, action: str, missing: Callable[[], MlopsError] | None = None
    ) -> Iterator[None]:
        try:
            yield
        except MlopsError:
            raise
        except Exception as exc:
            if missing is not None and getattr(exc, "error_code", None) in (
                "RESOURCE_DOES_NOT_EXIST",
                "NOT_FOUND",
            ):
                raise missing() from exc
            self._fail(exc, action)

    # -- experiments ----------------------------------------------------------------------
    @staticmethod
    def _experiment(exp: Any) -> ExperimentInfo:
        return ExperimentInfo(
            id=str(exp.experiment_id),
            name=exp.name,
            created_at=(exp.creation_time or 0) / 1000,
            tags=codec.user_tags(exp.tags or {}),
        )

    def find_experiment(self, name: str) -> ExperimentInfo | None:
        with self._calling(f"looking up experiment {name!r}"):
            exp = self._client.get_experiment_by_name(name)
        if exp is None or exp.lifecycle_stage != "active":
            return None
        return self._experiment(exp)

    def get_experiment(self, experiment_id: str) -> ExperimentInfo:
        def missing() -> MlopsError:
            return ExperimentNotFound(f"no experiment with id {experiment_id!r} in {self.uri}")

        if not isinstance(experiment_id, str) or not _EXPERIMENT_ID.match(experiment_id):
            raise missing()
        try:
            exp = self._client.get_experiment(experiment_id)
        except Exception as exc:
            # A SQL-backed server refuses ids that are not integers (INVALID_PARAMETER_VALUE).
            if getattr(exc, "error_code", None) in (
                "RESOURCE_DOES_NOT_EXIST",
                "INVALID_PARAMETER_VALUE",
            ):
                raise missing() from exc
            self._fail(exc, f"reading experiment {experiment_id}")
        if exp.lifecycle_stage != "active":
            raise missing()
        return self._experiment(exp)

    def list_experiments(self) -> list[ExperimentInfo]:
        from mlflow.entities import ViewType

        out: list[ExperimentInfo] = []
        token = None
        with self._calling("listing experiments"):
            while True:
                page = self._client.search_experiments(
                    view_type=ViewType.ACTIVE_ONLY,
                    max_results=PAGE_SIZE,
                    order_by=["creation_time ASC", "experiment_id ASC"],
                    page_token=token,
                )
                out.extend(self._experiment(e) for e in page)
                token = page.token
                if not token:
                    break
        return out

    def get_or_create_experiment(self, name: str) -> ExperimentInfo:
        found = self.find_experiment(name)
        if found is not None:
            return found
        try:
            self._client.create_experiment(name)
        except Exception as exc:
            if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":  # another process won
                self._fail(exc, f"creating experiment {name!r}")
        found = self.find_experiment(name)
        if found is None:
            raise BackendError(
                f"experiment {name!r} exists in MLflow's trash on {self.server}: restore it "
                "(`mlflow experiments restore`) or delete it for good (`mlflow gc`) to use the name"
            )
        return found

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self.get_experiment(experiment_id)
        codec.check_key("experiment tag key", key)
        with self._calling(f"tagging experiment {experiment_id}"):
            self._client.set_experiment_tag(experiment_id, key, value)

    # -- runs ---------------------------------------------------------------------------
    def _mlflow_run(self, run_id: str) -> Any:
        def missing() -> MlopsError:
            return RunNotFound(f"no run with id {run_id!r} in {self.uri}")

        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise missing()
        with self._calling(f"reading run {run_id}", missing):
            run = self._client.get_run(run_id)
        if run.info.lifecycle_stage != "active":
            raise missing()
        return run

    def _record(self, run: Any) -> RunRecord:
        info, data = run.info, run.data
        tags = dict(data.tags)
        status = _STATUS_FROM_MLFLOW.get(str(info.status), RunStatus.RUNNING)
        run_id = info.run_id
        return RunRecord(
            id=run_id,
            experiment_id=str(info.experiment_id),
            name=info.run_name or tags.get(codec.RUN_NAME_TAG) or "",
            status=status,
            start_time=codec.from_millis(info.start_time) or 0.0,
            end_time=codec.from_millis(info.end_time) if status.is_terminal else None,
            parent_id=tags.get(codec.PARENT_TAG) or None,
            params=codec.decode_params(data.params, tags),
            metrics={k: codec.metric_from_mlflow(v) for k, v in data.metrics.items()},
            tags=codec.user_tags(tags),
            context=_LazyContext(lambda: self._read_context(run_id, tags)),
            error=tags.get(codec.ERROR_TAG) if status.is_terminal else None,
        )

    def create_run(
        self,
        experiment_id: str,
        *,
        run_id: str,
        name: str,
        start_time: float,
        parent_id: str | None = None,
        params: dict[str, object] | None = None,
        tags: dict[str, str] | None = None,
        context: dict[str, object] | None = None,
    ) -> RunRecord:
        """Create the run on the server. MLflow assigns the id; ``run_id`` is not used."""
        self.get_experiment(experiment_id)
        if parent_id is not None:
            self._mlflow_run(parent_id)
        encoded = [(k, *codec.encode_param(k, v)) for k, v in (params or {}).items()]
        user = {k: codec.check_tag(k, v) for k, v in (tags or {}).items()}
        system = codec.context_tags(context or {})
        if parent_id is not None:
            system[codec.PARENT_TAG] = parent_id
        context_json = json.dumps(context, ensure_ascii=False, default=str) if context else None
        with self._calling(f"creating a run in experiment {experiment_id}"):
            run = self._client.create_run(
                experiment_id, start_time=codec.to_millis(start_time), tags=system, run_name=name
            )
        new_id = run.info.run_id
        try:
            self._log(new_id, [], encoded, list(user.items()))
            if context_json is not None:
                with self._calling(f"storing the context of run {new_id}"):
                    self._client.log_text(new_id, context_json, CONTEXT_FILE)
        except BaseException:
            with contextlib.suppress(Exception):  # do not leave a half-made run behind
                self._client.delete_run(new_id)
            raise
        record = self._record(self._mlflow_run(new_id))
        if context is not None:
            record = _with_context(record, context)
        return record

    def end_run(
        self, run_id: str, status: RunStatus, end_time: float, error: str | None = None
    ) -> None:
        from mlflow.entities import RunStatus as MlflowStatus
        from mlflow.entities import RunTag

        run = self._mlflow_run(run_id)
        if _STATUS_FROM_MLFLOW.get(str(run.info.status), RunStatus.RUNNING).is_terminal:
            return  # the first ending wins
        status = RunStatus(status)
        with self._calling(f"ending run {run_id}"):
            if error:
                self._client.log_batch(
                    run_id, tags=[RunTag(codec.ERROR_TAG, codec.error_tail(error))]
                )
            # The store call, not client.set_terminated: that one prints the run's URL to stdout.
            store = getattr(getattr(self._client, "_tracking_client", None), "store", None)
            if store is None:  # another MLflow layout: the public call does the same
                self._client.set_terminated(run_id, status.value, codec.to_millis(end_time))
                return
            store.update_run_info(
                run_id,
                run_status=MlflowStatus.from_string(status.value),
                end_time=codec.to_millis(end_time),
                run_name=None,
            )

    def get_run(self, run_id: str) -> RunRecord:
        return self._record(self._mlflow_run(run_id))

    # -- writes ---------------------------------------------------------------------------
    def write_batch(self, batch: WriteBatch) -> None:
        """Write a batch: everything is checked first, then one ``log_batch`` per run and chunk.

        Params already stored are left alone (params are immutable; the first
        value wins). A retried batch writes nothing twice: MLflow keeps one copy
        of identical metric points, and tags are last-writer-wins.
        """
        if not len(batch):
            return
        metrics: dict[str, list[tuple[str, float, int, int]]] = {}
        params: dict[str, dict[str, tuple[str, bool]]] = {}
        tags: dict[str, dict[str, str]] = {}
        for item in batch.metrics:
            run_id, key, value, step, timestamp = _checked_metric(item)
            metrics.setdefault(run_id, []).append((key, value, step, codec.to_millis(timestamp)))
        for run_id, key, param in batch.params:
            run_params = params.setdefault(run_id, {})
            if key not in run_params:  # the first value in a batch wins, too
                run_params[key] = codec.encode_param(key, param)
        for run_id, key, tag in batch.tags:
            tags.setdefault(run_id, {})[key] = codec.check_tag(key, tag)
        # Read first, write after: a run that does not exist fails the batch before anything is written.
        new_params = {run_id: self._new_params(run_id, p) for run_id, p in params.items()}
        for run_id in dict.fromkeys(itertools.chain(params, tags, metrics)):
            run_metrics, run_tags = metrics.get(run_id, []), list(tags.get(run_id, {}).items())
            try:
                self._log(run_id, run_metrics, new_params.get(run_id, []), run_tags)
            except BackendError as exc:
                # Another writer stored one of these params first, with another value: its value stays.
                if not new_params.get(run_id) or "param" not in str(exc).lower():
                    raise
                self._log(run_id, run_metrics, self._new_params(run_id, params[run_id]), run_tags)

    def _new_params(
        self, run_id: str, params: Mapping[str, tuple[str, bool]]
    ) -> list[tuple[str, str, bool]]:
        """The params the run does not hold yet (a stored param keeps its first value)."""
        stored = self._mlflow_run(run_id).data.params
        return [(k, text, is_json) for k, (text, is_json) in params.items() if k not in stored]

    def _log(
        self,
        run_id: str,
        metrics: Sequence[tuple[str, float, int, int]],
        params: Sequence[tuple[str, str, bool]],
        tags: Sequence[tuple[str, str]],
    ) -> None:
        """``log_batch`` calls within MLflow's limits.

        The tags that say which params hold JSON go in a request of their own,
        before the params: MLflow commits a batch's params before its tags, and
        a param stored without its type (a concurrent reader, a failure between
        the two) would read back as text.
        """
        json_tags = codec.param_json_tags(k for k, _, is_json in params if is_json)
        for chunk in _chunks([], json_tags, []):
            self._send(run_id, *chunk)
        for chunk in _chunks(params, tags, metrics):
            self._send(run_id, *chunk)

    def _send(
        self,
        run_id: str,
        params: Sequence[tuple[str, str, bool]],
        tags: Sequence[tuple[str, str]],
        metrics: Sequence[tuple[str, float, int, int]],
    ) -> None:
        from mlflow.entities import Metric as MlflowMetric
        from mlflow.entities import Param, RunTag

        with self._calling(
            f"writing to run {run_id}",
            lambda: RunNotFound(f"no run with id {run_id!r} in {self.uri}"),
        ):
            self._client.log_batch(
                run_id,
                metrics=[MlflowMetric(k, v, ts, s) for k, v, s, ts in metrics],
                params=[Param(k, text) for k, text, _ in params],
                tags=[RunTag(k, v) for k, v in tags],
                synchronous=True,
            )

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        with self._calling(
            f"reading metric {key!r} of run {run_id}",
            lambda: RunNotFound(f"no run with id {run_id!r} in {self.uri}"),
        ):
            points = self._client.get_metric_history(run_id, key)
        if not points:
            self._mlflow_run(run_id)  # RunNotFound for an unknown run; MLflow answers []
        history = [
            Metric(key, codec.metric_from_mlflow(p.value), int(p.step), p.timestamp / 1000)
            for p in points
        ]
        return sorted(history, key=lambda m: (m.step, m.timestamp))

    # -- search -----------------------------------------------------------------------------
    def _experiment_ids(self, experiment_ids: Sequence[str] | None) -> list[str]:
        active = [e.id for e in self.list_experiments()]
        if experiment_ids is None:
            return active
        wanted = set(experiment_ids)
        return [i for i in active if i in wanted]

    def _pages(
        self, experiment_ids: list[str], filter_string: str, order_by: list[str], page_size: int
    ) -> Iterator[Any]:
        from mlflow.entities import ViewType

        token = None
        first = True
        while True:
            try:
                page = self._client.search_runs(
                    experiment_ids,
                    filter_string=filter_string,
                    run_view_type=ViewType.ACTIVE_ONLY,
                    max_results=page_size,
                    order_by=order_by,
                    page_token=token,
                )
            except Exception as exc:
                if (
                    first
                    and filter_string
                    and getattr(exc, "error_code", None) == "INVALID_PARAMETER_VALUE"
                ):
                    # The server cannot read the filter we built (an older MLflow?): filter here instead.
                    filter_string = ""
                    continue
                self._fail(exc, "searching runs")
            first = False
            yield from page
            token = page.token
            if not token:
                return

    def _matching(
        self,
        experiment_ids: Sequence[str] | None,
        filter: Expr | None,
        order_by: list[str],
        page_size: int = PAGE_SIZE,
    ) -> Iterator[RunRecord]:
        ids = self._experiment_ids(experiment_ids)
        if not ids:
            return
        for run in self._pages(ids, to_mlflow_filter(filter), order_by, page_size):
            record = self._record(run)
            if matches(filter, record):
                yield record

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None,
        filter: Expr | None = None,
        order_by: Sequence[OrderKey] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        if limit == 0:
            return []
        end = None if limit is None else offset + limit
        pushed = mlflow_order(order_by)
        if pushed is not None:
            # MLflow's order is the contract's: stop paging once enough runs matched.
            page = PAGE_SIZE if end is None else max(min(end, PAGE_SIZE), 50)
            return list(
                itertools.islice(self._matching(experiment_ids, filter, pushed, page), offset, end)
            )
        found = order_records(list(self._matching(experiment_ids, filter, [])), order_by)
        return found[offset:end]

    def count_runs(self, experiment_ids: Sequence[str] | None, filter: Expr | None = None) -> int:
        return sum(1 for _ in self._matching(experiment_ids, filter, []))

    # -- artifacts and context ------------------------------------------------------------------
    def _read_json_artifact(self, run_id: str, path: str) -> Any | None:
        """A JSON artifact of the run, or None when the run has none at ``path``."""
        folder = path.rpartition("/")[0]
        with self._calling(
            f"listing artifacts of run {run_id}",
            lambda: RunNotFound(f"no run with id {run_id!r} in {self.uri}"),
        ):
            listed = {f.path for f in self._client.list_artifacts(run_id, folder or None)}
        if path not in listed:
            return None
        tmp = tempfile.mkdtemp(prefix="mlops-mlflow-")
        try:
            with self._calling(f"reading {path} of run {run_id}"):
                local = self._client.download_artifacts(run_id, path, tmp)
            return json.loads(Path(local).read_text(encoding="utf-8"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _read_context(self, run_id: str, tags: Mapping[str, str]) -> dict[str, Any]:
        stored = self._read_json_artifact(run_id, CONTEXT_FILE)
        if isinstance(stored, dict):
            return stored
        return codec.context_from_tags(tags)

    def _manifest_lock(self, run_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._manifest_locks.setdefault(run_id, threading.Lock())

    def add_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry]) -> None:
        self._mlflow_run(run_id)
        if not entries:
            return
        with self._manifest_lock(run_id):
            current = {e.path: e for e in self._manifest(run_id)}
            for entry in entries:
                current[entry.path] = entry
            files = [
                {"path": e.path, "size": e.size, "digest": e.digest}
                for e in sorted(current.values(), key=lambda e: e.path)
            ]
            with self._calling(f"recording artifacts of run {run_id}"):
                self._client.log_text(
                    run_id, json.dumps({"version": 1, "files": files}, indent=1), ARTIFACTS_FILE
                )

    def _manifest(self, run_id: str) -> list[ArtifactEntry]:
        data = self._read_json_artifact(run_id, ARTIFACTS_FILE)
        if not isinstance(data, dict):
            return []
        return [
            ArtifactEntry(f["path"], int(f["size"]), f["digest"]) for f in data.get("files", [])
        ]

    def list_artifacts(self, run_id: str) -> list[ArtifactEntry]:
        return sorted(self._manifest(run_id), key=lambda e: e.path)

    def close(self) -> None:
        """Nothing to release: MLflow pools HTTP connections per process."""


def _with_context(record: RunRecord, context: Mapping[str, Any]) -> RunRecord:
    import attrs

    return attrs.evolve(record, context=dict(context))


def _is_connection_error(exc: BaseException) -> bool:
    try:
        import requests
    except ImportError:  # pragma: no cover - MLflow depends on requests
        return False
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
        return True
    text = str(exc)
    return (
        "Max retries exceeded" in text
        or "Failed to establish a new connection" in text
        or "Connection refused" in text
    )


def _checked_metric(item: tuple[Any, ...]) -> tuple[str, str, float, int, float]:
    run_id, key, value, step, timestamp = item
    codec.check_key("metric key", key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue(f"metric {key!r}: value must be a number, got {value!r}")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 2**63:
        raise InvalidValue(f"metric {key!r}: step must be an integer in [0, 2**63), got {step!r}")
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, (int, float))
        or not 0 <= timestamp < 2**53 / 1000
    ):
        raise InvalidValue(
            f"metric {key!r}: timestamp must be seconds since the epoch, got {timestamp!r}"
        )
    return run_id, key, float(value), step, float(timestamp)


def _size(*texts: str) -> int:
    return sum(len(t.encode("utf-8")) for t in texts) + 64


def _chunks(
    params: Sequence[tuple[str, str, bool]],
    tags: Sequence[tuple[str, str]],
    metrics: Sequence[tuple[str, float, int, int]],
) -> Iterator[
    tuple[list[tuple[str, str, bool]], list[tuple[str, str]], list[tuple[str, float, int, int]]]
]:
    """Split writes into ``log_batch`` requests MLflow accepts (counts and bytes), in order."""
    p_chunk: list[tuple[str, str, bool]] = []
    t_chunk: list[tuple[str, str]] = []
    m_chunk: list[tuple[str, float, int, int]] = []
    size = 0

    def full(extra: int) -> bool:
        entities = len(p_chunk) + len(t_chunk) + len(m_chunk)
        return entities + 1 > codec.MAX_ENTITIES_PER_BATCH or size + extra > codec.MAX_BATCH_BYTES

    def flush() -> tuple[list[Any], list[Any], list[Any]]:
        nonlocal p_chunk, t_chunk, m_chunk, size
        out = (p_chunk, t_chunk, m_chunk)
        p_chunk, t_chunk, m_chunk, size = [], [], [], 0
        return out

    for param in params:
        extra = _size(param[0], param[1])
        if len(p_chunk) + 1 > codec.MAX_PARAMS_TAGS_PER_BATCH or full(extra):
            yield flush()
        p_chunk.append(param)
        size += extra
    for tag in tags:
        extra = _size(*tag)
        if len(t_chunk) + 1 > codec.MAX_PARAMS_TAGS_PER_BATCH or full(extra):
            yield flush()
        t_chunk.append(tag)
        size += extra
    for metric in metrics:
        extra = _size(metric[0])
        if len(m_chunk) + 1 > codec.MAX_METRICS_PER_BATCH or full(extra):
            yield flush()
        m_chunk.append(metric)
        size += extra
    if p_chunk or t_chunk or m_chunk:
        yield flush()


def open_mlflow(uri: str, *, root: Path | str = ".") -> MlflowTrackingStore:
    """Factory registered for the ``mlflow+http``, ``mlflow+https``… schemes."""
    return MlflowTrackingStore(uri, root=root)
