"""A run: one execution of training code, with its params, metrics, tags and files.

A run started in this process is *active* until it ends: logging calls queue
their writes in the workspace's background writer and return at once. Leaving
the ``with`` block ends it FINISHED, FAILED (the error is recorded) or KILLED
(Ctrl-C or SIGTERM). Runs read back with ``ws.get_run`` are snapshots; call
:meth:`Run.refresh` to read them again.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_sdk.errors import (
    ArtifactNotFound,
    BackendError,
    InvalidName,
    InvalidValue,
    ParamConflict,
    PluginError,
    RunNotActive,
)
from mlops_sdk.records import ArtifactEntry, Metric, RunRecord, RunStatus
from mlops_sdk.validation import (
    MAX_STEP,
    to_logged_metric,
    to_param_value,
    to_step,
    to_tag_value,
    to_timestamp,
    validate_key,
    validate_relpath,
)

if TYPE_CHECKING:
    from mlops_sdk.dataset import DatasetVersion
    from mlops_sdk.model import ModelVersion
    from mlops_sdk.signature import Signature
    from mlops_sdk.workspace import Workspace

MAX_ERROR_CHARS = 20_000

_active: dict[str, Run] = {}  # runs started (and not ended) by this process, in start order
_active_lock = threading.RLock()
_checked_keys: set[str] = set()  # metric keys already validated (the hot path skips them)
_hooks_installed = False
_terminated = False


class Terminated(SystemExit):
    """Raised in the main thread when SIGTERM arrives while a run is active."""


def active_runs() -> list[Run]:
    with _active_lock:
        return list(_active.values())


def active_run_by_id(run_id: str) -> Run | None:
    return _active.get(run_id)


class Run:
    """One run. Use as a context manager, or call :meth:`end`."""

    def __init__(self, workspace: Workspace, record: RunRecord, *, active: bool = False) -> None:
        self.workspace = workspace
        self._record = record
        self._active = active
        self._params: dict[str, Any] = dict(record.params)
        self._next_step: dict[str, int] = {}
        self._writer = workspace.writer if active else None

    # -- identity and state -----------------------------------------------------------
    @property
    def id(self) -> str:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def experiment_id(self) -> str:
        return self._record.experiment_id

    @property
    def parent_id(self) -> str | None:
        return self._record.parent_id

    @property
    def is_active(self) -> bool:
        """True while this process can log into the run."""
        return self._active

    def _fresh(self) -> RunRecord:
        if self._active:
            self.refresh()
        return self._record

    def refresh(self) -> Run:
        """Read the run from the store again (pending writes are flushed first)."""
        if self._writer is not None:
            self._writer.flush()
        self._record = self.workspace.tracking.get_run(self.id)
        return self

    @property
    def record(self) -> RunRecord:
        """The run as stored (an immutable :class:`RunRecord`)."""
        return self._fresh()

    @property
    def status(self) -> RunStatus:
        return self._fresh().status

    @property
    def start_time(self) -> float:
        return self._record.start_time

    @property
    def end_time(self) -> float | None:
        return self._fresh().end_time

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._fresh().params)

    @property
    def metrics(self) -> dict[str, float]:
        """The latest value of each metric."""
        return dict(self._fresh().metrics)

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._fresh().tags)

    @property
    def context(self) -> dict[str, Any]:
        """Where the run ran: git, python, platform, packages, command, env."""
        return dict(self._record.context)

    @property
    def error(self) -> str | None:
        """The error of a FAILED or KILLED run."""
        return self._fresh().error

    # -- logging ------------------------------------------------------------------------
    def _check_active(self) -> None:
        if not self._active:
            raise RunNotActive(f"run {self.id} ({self.name}) has ended; start a new run to log more")

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: float | None = None) -> None:
        """Log one metric point. Returns at once; the write happens in the background.

        ``step`` defaults to one past the last step logged for ``key`` in this run.
        NaN and ±inf are stored as they are. ``value`` may be a one-element torch
        tensor, also on a GPU: it is read in the background, so logging
        ``loss`` each step does not make the training loop wait for the GPU.
        """
        if not self._active:
            self._check_active()
        if key not in _checked_keys:
            validate_key("metric key", key)
            if len(_checked_keys) < 100_000:
                _checked_keys.add(key)
        if type(value) is not float:
            value = to_logged_metric(key, value)
        if step is None:
            step = self._next_step.get(key, 0)
        elif type(step) is not int or step < 0 or step > MAX_STEP:
            step = to_step(key, step)
        self._next_step[key] = step + 1
        ts = time.time() if timestamp is None else to_timestamp(key, timestamp)
        self._writer.metric(self._record.id, key, value, step, ts)  # type: ignore[union-attr]

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, timestamp: float | None = None) -> None:
        """Log several metrics at the same step and time."""
        if not isinstance(metrics, Mapping):
            raise InvalidValue(f"log_metrics takes a mapping of name to number, got {type(metrics).__name__}")
        ts = time.time() if timestamp is None else timestamp
        for key, value in metrics.items():
            self.log_metric(key, value, step, ts)

    def _check_param(self, key: str, value: object) -> Any:
        from mlops_sdk.redact import REDACTED, is_secret_name

        validate_key("param key", key)
        plain = REDACTED if is_secret_name(key) else to_param_value(key, value)
        if key in self._params:
            if self._params[key] != plain:
                raise ParamConflict(
                    f"param {key!r} of run {self.id} is already {self._params[key]!r}; params cannot "
                    f"change (got {plain!r}). Log a metric or tag instead, or start a new run."
                )
            return None
        return plain

    def log_param(self, key: str, value: Any) -> None:
        """Log a hyperparameter. Params are immutable; logging the same value again is a no-op."""
        self._check_active()
        plain = self._check_param(key, value)
        if plain is None and key in self._params:
            return
        self._params[key] = plain
        self._writer.param(self.id, key, plain)  # type: ignore[union-attr]

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log several params; all are checked before any is logged."""
        self._check_active()
        if not isinstance(params, Mapping):
            raise InvalidValue(f"log_params takes a mapping, got {type(params).__name__}")
        checked = []
        for key, value in params.items():
            plain = self._check_param(key, value)
            if not (plain is None and key in self._params):
                checked.append((key, plain))
        for key, plain in checked:
            self._params[key] = plain
            self._writer.param(self.id, key, plain)  # type: ignore[union-attr]

    def set_tag(self, key: str, value: str) -> None:
        """Set a tag (tags can change; the last value wins)."""
        self._check_active()
        validate_key("tag key", key)
        self._writer.tag(self.id, key, to_tag_value(key, value))  # type: ignore[union-attr]

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._check_active()
        checked = [(validate_key("tag key", k), to_tag_value(k, v)) for k, v in tags.items()]
        for key, value in checked:
            self._writer.tag(self.id, key, value)  # type: ignore[union-attr]

    # -- artifacts ---------------------------------------------------------------------
    def log_artifact(self, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> list[ArtifactEntry]:
        """Store a file, or every file of a folder, with the run.

        A file lands at ``artifact_path/<file name>``; a folder's files keep their
        relative paths under ``artifact_path`` (default: the folder's name).
        Symbolic links that point outside the folder are refused.
        """
        self._check_active()
        source = Path(local_path)
        if artifact_path is not None:
            validate_relpath("artifact path", artifact_path)
        if not source.exists():
            raise ArtifactNotFound(f"cannot log artifact: {source} does not exist")
        files: list[tuple[Path, str]] = []
        if source.is_file():
            name = source.name
            files.append((source, f"{artifact_path}/{name}" if artifact_path else name))
        else:
            base = artifact_path if artifact_path is not None else source.name
            real_root = source.resolve()
            for dirpath, _dirs, names in os.walk(source):
                for name in sorted(names):
                    path = Path(dirpath) / name
                    real = path.resolve()
                    if not real.is_relative_to(real_root):
                        raise InvalidValue(f"{path} is a link to {real}, outside {source}; refusing to log it")
                    rel = path.relative_to(source).as_posix()
                    files.append((path, f"{base}/{rel}" if base else rel))
            if not files:
                raise InvalidValue(f"cannot log artifact: folder {source} holds no files")
        for _, rel in files:
            validate_relpath("artifact path", rel)
        entries = []
        for path, rel in files:
            digest, size = self.workspace.objects.put_file(path)
            entries.append(ArtifactEntry(rel, size, digest))
        self.workspace.tracking.add_artifacts(self.id, entries)
        return entries

    def use_dataset(self, dsv: DatasetVersion) -> DatasetVersion:
        """Record that this run reads ``dsv`` (lineage: input).

        A version read from elsewhere (``Dataset.from_dvc``) is first recorded
        in this workspace, pinned to its source. The run gets a tag
        ``mlops.dataset.<name>`` = ``v<version>`` for filtering; returns the
        (registered) version.
        """
        from mlops_sdk.dataset import Dataset, DatasetVersion

        self._check_active()
        if not isinstance(dsv, DatasetVersion):
            raise InvalidValue(f"use_dataset takes a DatasetVersion, got {type(dsv).__name__}")
        if dsv.version is None or dsv.workspace is None:
            dsv = Dataset(self.workspace, dsv.name).register(dsv)
        elif dsv.workspace.tracking.uri != self.workspace.tracking.uri:
            raise InvalidValue(f"{dsv.label} belongs to another workspace ({dsv.workspace.tracking.uri})")
        assert dsv.version is not None
        self.workspace.tracking.add_lineage(self.id, "dataset", dsv.name, dsv.version, "input")
        self._writer.tag(self.id, f"mlops.dataset.{dsv.name}", f"v{dsv.version}")  # type: ignore[union-attr]
        return dsv

    def datasets(self) -> list[DatasetVersion]:
        """The dataset versions this run used."""
        from mlops_sdk.dataset import DatasetVersion

        edges = self.workspace.tracking.lineage(run_id=self.id, kind="dataset")
        return [
            DatasetVersion(self.workspace, self.workspace.tracking.get_version("dataset", e.name, e.version))
            for e in edges
            if e.role == "input"
        ]

    def log_model(
        self,
        obj: Any,
        name: str,
        input_example: Any = None,
        signature: Signature | Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        *,
        flavor: str | None = None,
        allow_pickle: bool = False,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        intended_use: str = "",
        limitations: str = "",
        fairness: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Save ``obj`` and register it as the next version of model ``name`` (lineage: output).

        The flavor (sklearn, torch, pyfunc or a plugin's) is picked from the
        object unless ``flavor`` names one. ``signature`` is inferred from
        ``input_example`` when not given; ``metrics`` default to this run's
        latest metrics. ``description``, ``intended_use``, ``limitations`` and
        ``fairness`` (group → {metric: value}) go into the model card. Pickle is
        used only with ``allow_pickle=True``. A failure registers nothing.

        >>> mv = run.log_model(clf, "churn-clf", input_example=X[:5])   # doctest: +SKIP
        >>> mv.version                                                   # doctest: +SKIP
        1
        """
        from mlops_sdk.model import log_model

        return log_model(
            self,
            obj,
            name,
            input_example,
            signature,
            metrics,
            flavor=flavor,
            allow_pickle=allow_pickle,
            description=description,
            tags=tags,
            intended_use=intended_use,
            limitations=limitations,
            fairness=fairness,
        )

    def log_text(self, text: str, artifact_path: str) -> ArtifactEntry:
        """Store a string as an artifact file."""
        self._check_active()
        validate_relpath("artifact path", artifact_path)
        digest, size = self.workspace.objects.put_bytes(text.encode())
        entry = ArtifactEntry(artifact_path, size, digest)
        self.workspace.tracking.add_artifacts(self.id, [entry])
        return entry

    def artifacts(self) -> list[ArtifactEntry]:
        """Every artifact file of the run, sorted by path."""
        return self.workspace.tracking.list_artifacts(self.id)

    def _artifact(self, path: str) -> ArtifactEntry:
        for entry in self.artifacts():
            if entry.path == path:
                return entry
        raise ArtifactNotFound(f"run {self.id} has no artifact {path!r}")

    def read_artifact(self, path: str) -> bytes:
        """The bytes of one artifact file, verified against its hash."""
        return self.workspace.objects.get_bytes(self._artifact(path).digest)

    def download_artifacts(self, dest: str | os.PathLike[str], path: str | None = None) -> Path:
        """Copy the run's artifacts (or those under ``path``) into ``dest``; returns ``dest``."""
        target = Path(dest)
        entries = self.artifacts()
        if path is not None:
            entries = [e for e in entries if e.path == path or e.path.startswith(path.rstrip("/") + "/")]
            if not entries:
                raise ArtifactNotFound(f"run {self.id} has no artifact at {path!r}")
        for entry in entries:
            self.workspace.objects.get_file(entry.digest, target / entry.path)
        return target

    # -- reading ------------------------------------------------------------------------
    def metric_history(self, key: str) -> list[Metric]:
        """Every point of a metric, in step order (records with .step .value .timestamp)."""
        if self._writer is not None and self._active:
            self._writer.flush()
        return self.workspace.tracking.metric_history(self.id, key)

    def children(self) -> RunList:
        """Runs started with this run as parent."""
        return self.workspace.runs(f"parent_id = '{self.id}'")

    # -- ending -------------------------------------------------------------------------
    def end(self, status: RunStatus | str = RunStatus.FINISHED, error: str | None = None) -> None:
        """End the run: flush every pending write, then record the status.

        Ending an ended run does nothing.
        """
        if not self._active:
            return
        status = RunStatus(status)
        if not status.is_terminal:
            raise InvalidValue("a run can only end as FINISHED, FAILED or KILLED")
        self._active = False
        with _active_lock:
            _active.pop(self.id, None)
        flush_error: BaseException | None = None
        try:
            self.workspace.flush()
        except BackendError as exc:
            flush_error = exc
            status = RunStatus.FAILED
            error = (error + "\n" if error else "") + f"pending writes could not be stored: {exc}"
        except (InvalidName, InvalidValue) as exc:  # the store refused some items; the rest is stored
            flush_error = exc
            error = (error + "\n" if error else "") + str(exc)
        self.workspace.tracking.end_run(self.id, status, time.time(), error[:MAX_ERROR_CHARS] if error else None)
        self._record = self.workspace.tracking.get_run(self.id)
        from mlops_sdk.plugins import get_plugin_manager

        try:
            get_plugin_manager().call("mlops_after_run_end", record=self._record)
        except PluginError as exc:
            raise PluginError(f"{exc} (run {self.id} was already stored as {self._record.status})") from exc
        if flush_error is not None:
            raise flush_error

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        status, error = status_for_exception(exc)
        self.end(status, error)

    # -- display ------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, status={self._record.status.value if not self._active else 'RUNNING'})"

    def _repr_html_(self) -> str:
        from mlops_sdk.display import fmt_duration, fmt_time, html_table

        r = self._fresh()
        rows: list[tuple[str, Any]] = [
            ("id", r.id), ("name", r.name), ("status", str(r.status)),
            ("start", fmt_time(r.start_time)), ("duration", fmt_duration(r.start_time, r.end_time)),
        ]
        rows += [(f"params.{k}", v) for k, v in r.params.items()]
        rows += [(f"metrics.{k}", v) for k, v in r.metrics.items()]
        rows += [(f"tags.{k}", v) for k, v in r.tags.items()]
        return html_table(["field", "value"], rows, caption=f"Run {r.name}")


class RunList(list[Run]):
    """A list of runs that renders as a table in Jupyter."""

    def __init__(self, runs: Iterable[Run] = ()) -> None:
        super().__init__(runs)

    def _repr_html_(self) -> str:
        from mlops_sdk.display import html_table, runs_table

        headers, rows = runs_table([r.record for r in self])
        return html_table(headers, rows, caption=f"{len(self)} runs")

    def to_records(self) -> list[RunRecord]:
        return [r.record for r in self]


def status_for_exception(exc: BaseException | None) -> tuple[RunStatus, str | None]:
    """FINISHED for no error (or a clean ``sys.exit``), KILLED for Ctrl-C/SIGTERM, else FAILED."""
    if exc is None:
        return RunStatus.FINISHED, None
    if isinstance(exc, (KeyboardInterrupt, Terminated)):
        return RunStatus.KILLED, f"{type(exc).__name__}: interrupted"
    if isinstance(exc, SystemExit) and exc.code in (0, None):
        return RunStatus.FINISHED, None
    text = "".join(traceback.format_exception(exc))
    return RunStatus.FAILED, text[-MAX_ERROR_CHARS:]


def start(
    workspace: Workspace,
    experiment_id: str,
    experiment_name: str,
    *,
    name: str | None,
    params: Mapping[str, Any] | None,
    tags: Mapping[str, str] | None,
    parent: Run | str | None,
) -> Run:
    """Create a run in the store and make it active in this process."""
    from mlops_sdk.plugins import get_plugin_manager
    from mlops_sdk.redact import REDACTED, is_secret_name, redact_mapping

    run_id = uuid.uuid4().hex
    if name is None:
        name = f"run-{run_id[:8]}"
    validate_key("run name", name)
    checked_params: dict[str, Any] = {}
    for key, value in (params or {}).items():
        validate_key("param key", key)
        checked_params[key] = REDACTED if is_secret_name(key) else to_param_value(key, value)
    checked_tags = {validate_key("tag key", k): to_tag_value(k, v) for k, v in (tags or {}).items()}
    parent_id = parent.id if isinstance(parent, Run) else parent
    if parent_id is not None and not isinstance(parent_id, str):
        raise InvalidValue(f"parent must be a Run or a run id, got {type(parent).__name__}")

    manager = get_plugin_manager()
    context: dict[str, Any] = {}
    for section in reversed(manager.call("mlops_run_context", experiment_name=experiment_name, run_name=name)):
        if section:
            context.update(section)
    packages = context.pop("packages", None)  # names like google-auth are packages, not secrets
    context = _redact_context(context)
    if packages is not None:
        context["packages"] = packages
    context["workspace"] = redact_mapping({"tracking": workspace.tracking.uri, "storage": workspace.config.storage})

    _install_process_hooks()
    record = workspace.tracking.create_run(
        experiment_id,
        run_id=run_id,
        name=name,
        start_time=time.time(),
        parent_id=parent_id,
        params=checked_params,
        tags=checked_tags,
        context=context,
    )
    run = Run(workspace, record, active=True)
    with _active_lock:
        _active[run.id] = run
    try:
        manager.call("mlops_after_run_start", run=run)
    except PluginError as exc:
        run.end(RunStatus.FAILED, str(exc))
        raise
    return run


def _redact_context(value: Any) -> Any:
    from mlops_sdk.redact import REDACTED, is_secret_name, redact_uri

    if isinstance(value, dict):
        return {k: (REDACTED if is_secret_name(str(k)) and not isinstance(v, (dict, list)) else _redact_context(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_context(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_uri(value)
    return value


# -- process hooks: exit, SIGTERM, fork -------------------------------------------------
def _end_all_at_exit() -> None:
    """End runs still active when the interpreter exits, flushing what they logged."""
    runs = active_runs()
    if not runs:
        return
    last = getattr(sys, "last_value", None) or getattr(sys, "last_exc", None)
    if _terminated:
        status: RunStatus = RunStatus.KILLED
        error: str | None = "Terminated: the process received SIGTERM"
    elif last is not None:
        status, error = status_for_exception(last)
    else:
        status, error = RunStatus.FINISHED, None
    for run in reversed(runs):
        try:
            run.end(status, error)
        except Exception as exc:  # at exit, report and go on with the other runs
            print(f"mlops: could not end run {run.id}: {exc}", file=sys.stderr)


def _on_sigterm(signum: int, frame: Any) -> None:
    global _terminated
    if not _active:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    _terminated = True
    raise Terminated(128 + signum)


def _after_fork_in_child() -> None:
    from mlops_sdk.tracking.writer import _writers

    with _active_lock:
        _active.clear()
    for writer in list(_writers):
        dispose = getattr(writer.store, "dispose_after_fork", None)
        if dispose is not None:
            dispose()
        writer.after_fork()


def _install_process_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_end_all_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):  # not allowed here (embedded interpreters)
            pass
