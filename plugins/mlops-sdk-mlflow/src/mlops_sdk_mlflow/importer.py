"""Copy experiments and runs from any MLflow tracking store into an mlops-sdk workspace.

    >>> summary = import_mlflow(ws, "sqlite:///mlruns.db")        # doctest: +SKIP
    >>> summary.runs_imported, summary.runs_skipped                 # doctest: +SKIP

What is copied: experiments that hold runs or are named (with their tags), and for every active run its
name, status, start and end time, params, every point of every metric, tags
(MLflow's ``mlflow.*`` tags included, as information), parent (when the
parent is imported too) and where it ran (git commit from MLflow's
``mlflow.source.*`` tags). Artifact files are not copied.

Idempotent: each imported run carries the tag ``mlflow.source_run_id``; a
run whose source id is already in the workspace is skipped. The tag is
written last, so an interrupted import leaves at most one partial run without
it, and that run is imported again (whole) next time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from mlops_sdk.errors import (
    ConfigError,
    ExperimentNotFound,
    InvalidName,
    InvalidValue,
    MissingDependency,
    MlopsError,
)
from mlops_sdk.query import parse_filter
from mlops_sdk.records import RunStatus, WriteBatch
from mlops_sdk.redact import REDACTED, is_secret_name, redact_uri
from mlops_sdk.validation import to_param_value, to_tag_value, validate_key, validate_name

from mlops_sdk_mlflow import codec

if TYPE_CHECKING:
    from mlops_sdk.workspace import Workspace

METRIC_CHUNK = 10_000
_STATUS = {
    "RUNNING": RunStatus.RUNNING,
    "SCHEDULED": RunStatus.RUNNING,
    "FINISHED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "KILLED": RunStatus.KILLED,
}
_SKIPPED_TAGS = frozenset({codec.RUN_NAME_TAG, codec.PARENT_TAG, codec.SOURCE_RUN_TAG})

Progress = Callable[[int, int], None]


@attrs.define
class ExperimentSummary:
    """One source experiment and what became of its runs."""

    name: str
    source_id: str
    id: str | None = None
    runs_imported: int = 0
    runs_skipped: int = 0


@attrs.define
class ImportSummary:
    """What :func:`import_mlflow` did."""

    source: str
    experiments: list[ExperimentSummary] = attrs.field(factory=list)
    metric_points: int = 0
    warnings: list[str] = attrs.field(factory=list)

    @property
    def runs_imported(self) -> int:
        return sum(e.runs_imported for e in self.experiments)

    @property
    def runs_skipped(self) -> int:
        return sum(e.runs_skipped for e in self.experiments)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "runs_imported": self.runs_imported,
            "runs_skipped": self.runs_skipped,
            "metric_points": self.metric_points,
            "experiments": [attrs.asdict(e) for e in self.experiments],
            "warnings": list(self.warnings),
        }


def _client(uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise MissingDependency(
            f"importing from MLflow needs MLflow ({exc}): pip install mlops-sdk-mlflow"
        ) from exc
    _check_local_store(uri)
    try:
        return MlflowClient(tracking_uri=uri)
    except ImportError as exc:
        raise MissingDependency(
            f"reading the MLflow store {redact_uri(uri)} needs the full MLflow package ({exc}): "
            "pip install 'mlops-sdk-mlflow[full]'"
        ) from exc
    except Exception as exc:
        raise ConfigError(f"cannot open the MLflow store {redact_uri(uri)}: {exc}") from exc


def _check_local_store(uri: str) -> None:
    """MLflow creates an empty store for a path that does not exist; refuse that instead."""
    path: str | None = None
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]  # sqlite:////abs.db → /abs.db; sqlite:///rel.db → rel.db
    elif uri.startswith("file://"):
        path = uri[len("file://") :]
    elif "://" not in uri and not uri.startswith("databricks"):
        path = uri
    if path is not None and path not in ("", ":memory:") and not Path(path).exists():
        raise ConfigError(f"no MLflow store at {uri}: {Path(path).resolve()} does not exist")


def _call(what: str, uri: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except MlopsError:
        raise
    except Exception as exc:
        from mlops_sdk.errors import BackendError

        message = getattr(exc, "message", None) or str(exc)
        raise BackendError(f"MLflow store {redact_uri(uri)}: {what} failed: {message}") from exc


def _pages(fetch: Callable[..., Any], **kwargs: Any) -> list[Any]:
    out: list[Any] = []
    token = None
    while True:
        page = fetch(page_token=token, **kwargs)
        out.extend(page)
        token = page.token
        if not token:
            return out


def _experiment_name(name: str) -> str:
    """An mlops-sdk experiment name for an MLflow one (Databricks names are paths)."""
    try:
        return validate_name("experiment name", name)
    except InvalidName:
        cleaned = "-".join(
            part.strip() for part in name.replace("\\", "/").split("/") if part.strip()
        )
        cleaned = "".join(c if c.isprintable() else "_" for c in cleaned)[:200] or "mlflow"
        return validate_name("experiment name", cleaned)


def _parents_first(runs: Sequence[Any]) -> list[Any]:
    """Runs ordered so a parent (among ``runs``) always comes before its children."""
    by_id = {r.info.run_id: r for r in runs}

    def depth(run: Any) -> int:
        seen: set[str] = set()
        n = 0
        parent = run.data.tags.get(codec.PARENT_TAG)
        while parent in by_id and parent not in seen:
            seen.add(parent)
            n += 1
            parent = by_id[parent].data.tags.get(codec.PARENT_TAG)
        return n

    return sorted(runs, key=lambda r: (depth(r), r.info.start_time or 0, r.info.run_id))


def import_mlflow(
    workspace: Workspace,
    uri: str,
    experiments: Sequence[str] | None = None,
    *,
    progress: Progress | None = None,
) -> ImportSummary:
    """Copy the experiments (all active ones, or those named) and their runs from ``uri``.

    ``uri`` is any MLflow tracking URI: ``http://host:5000``, ``sqlite:///mlruns.db``,
    ``databricks``… ``progress(done, total)`` is called after each run.
    """
    client = _client(uri)
    from mlflow.entities import ViewType

    summary = ImportSummary(source=redact_uri(uri))
    sources = _call(
        "listing experiments",
        uri,
        _pages,
        client.search_experiments,
        view_type=ViewType.ACTIVE_ONLY,
        max_results=1000,
    )
    if experiments:
        by_name = {e.name: e for e in sources}
        missing = [n for n in experiments if n not in by_name]
        if missing:
            raise ExperimentNotFound(
                f"no experiment named {', '.join(map(repr, missing))} in the MLflow store {summary.source}; "
                f"it has: {', '.join(sorted(by_name)) or 'none'}"
            )
        sources = [by_name[n] for n in dict.fromkeys(experiments)]
    store = workspace.tracking
    runs_of: dict[str, list[Any]] = {}
    for exp in sources:
        runs_of[exp.experiment_id] = _call(
            f"listing runs of experiment {exp.name!r}",
            uri,
            _pages,
            client.search_runs,
            experiment_ids=[exp.experiment_id],
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
        )
    already = {
        record.tags[codec.SOURCE_RUN_TAG]: record.id
        for record in store.search_runs(
            None, parse_filter(f"tags.`{codec.SOURCE_RUN_TAG}` like '%'")
        )
    }
    total = sum(len(r) for r in runs_of.values())
    if progress is not None:
        progress(0, total)
    exp_summary: dict[str, ExperimentSummary] = {}
    target_ids: dict[str, str] = {}
    for exp in sources:
        exp_summary[exp.experiment_id] = ExperimentSummary(exp.name, exp.experiment_id)
    every_run = [run for exp in sources for run in runs_of[exp.experiment_id]]
    for done, run in enumerate(_parents_first(every_run), start=1):
        src_exp = run.info.experiment_id
        info = exp_summary[src_exp]
        if run.info.run_id in already:
            info.runs_skipped += 1
        else:
            if src_exp not in target_ids:
                source_exp = next(e for e in sources if e.experiment_id == src_exp)
                target_ids[src_exp] = _target_experiment(workspace, source_exp, summary)
            info.id = target_ids[src_exp]
            already[run.info.run_id] = _import_run(
                client, uri, store, info.id, run, already, summary
            )
            info.runs_imported += 1
        if progress is not None:
            progress(done, total)
    for exp in sources:
        info = exp_summary[exp.experiment_id]
        if info.id is None and experiments:  # asked for by name: created even when it holds no runs
            info.id = _target_experiment(workspace, exp, summary)
        elif info.id is None:  # nothing new: say where it lives, if it was imported before
            found = store.find_experiment(_experiment_name(exp.name))
            info.id = found.id if found is not None else None
        summary.experiments.append(info)
    return summary


def _target_experiment(workspace: Workspace, exp: Any, summary: ImportSummary) -> str:
    name = _experiment_name(exp.name)
    if name != exp.name:
        summary.warnings.append(f"experiment {exp.name!r} is imported as {name!r}")
    info = workspace.tracking.get_or_create_experiment(name)
    for key, value in (exp.tags or {}).items():
        try:
            workspace.tracking.set_experiment_tag(
                info.id, validate_key("tag key", key), to_tag_value(key, value)
            )
        except (InvalidName, InvalidValue) as exc:
            summary.warnings.append(f"experiment {exp.name!r}: tag {key!r} not imported ({exc})")
    return info.id


def _import_run(
    client: Any,
    uri: str,
    store: Any,
    experiment_id: str,
    run: Any,
    imported: dict[str, str],
    summary: ImportSummary,
) -> str:
    info, data = run.info, run.data
    src_id = info.run_id
    tags = dict(data.tags)
    where = f"run {src_id}"

    params: dict[str, Any] = {}
    for key, value in codec.decode_params(data.params, tags).items():
        try:
            validate_key("param key", key)
            params[key] = REDACTED if is_secret_name(key) else to_param_value(key, value)
        except (InvalidName, InvalidValue) as exc:
            summary.warnings.append(f"{where}: param {key!r} not imported ({exc})")
    run_tags: dict[str, str] = {}
    for key, value in tags.items():
        if key in _SKIPPED_TAGS or (
            codec.is_internal_tag(key) and not key.startswith(codec.MLFLOW_PREFIX)
        ):
            continue
        try:
            run_tags[validate_key("tag key", key)] = to_tag_value(key, value)
        except (InvalidName, InvalidValue) as exc:
            summary.warnings.append(f"{where}: tag {key!r} not imported ({exc})")
    name = info.run_name or tags.get(codec.RUN_NAME_TAG) or ""
    try:
        validate_key("run name", name)
    except InvalidName:
        name = f"mlflow-{src_id[:8]}"
    source_parent = tags.get(codec.PARENT_TAG)
    context: dict[str, Any] = codec.context_from_tags(tags)
    context["mlflow"] = {
        "tracking_uri": redact_uri(uri),
        "run_id": src_id,
        "experiment_id": str(info.experiment_id),
        "artifact_uri": redact_uri(info.artifact_uri or ""),
        "user": info.user_id,
        "parent_run_id": source_parent,
    }
    status = _STATUS.get(str(info.status), RunStatus.RUNNING)
    start = codec.from_millis(info.start_time) or 0.0
    record = store.create_run(
        experiment_id,
        run_id=uuid.uuid4().hex,
        name=name,
        start_time=start,
        parent_id=imported.get(source_parent) if source_parent else None,
        params=params,
        tags=run_tags,
        context=context,
    )
    new_id = record.id
    for key in sorted(data.metrics):
        try:
            validate_key("metric key", key)
        except InvalidName as exc:
            summary.warnings.append(f"{where}: metric {key!r} not imported ({exc})")
            continue
        history = _call(
            f"reading metric {key!r} of {where}", uri, client.get_metric_history, src_id, key
        )
        points = [
            (new_id, key, codec.metric_from_mlflow(p.value), int(p.step), p.timestamp / 1000)
            for p in history
        ]
        for start_at in range(0, len(points), METRIC_CHUNK):
            store.write_batch(WriteBatch(metrics=points[start_at : start_at + METRIC_CHUNK]))
        summary.metric_points += len(points)
    if status.is_terminal:
        end = codec.from_millis(info.end_time)
        store.end_run(new_id, status, end if end is not None else start, tags.get(codec.ERROR_TAG))
    store.write_batch(
        WriteBatch(tags=[(new_id, codec.SOURCE_RUN_TAG, src_id)])
    )  # last: marks it complete
    return str(new_id)
