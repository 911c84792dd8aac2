"""Module-level logging for notebooks and scripts: ``mlops.start_run()``, ``mlops.log_metric()``.

Every run started in this process (also through ``exp.start_run``) is
active; these functions act on the most recently started active run, so
code inside a job or a ``with exp.start_run()`` block can log without being
handed the run object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlops_sdk.errors import RunNotActive

if TYPE_CHECKING:
    from mlops_sdk.records import ArtifactEntry, RunStatus
    from mlops_sdk.run import Run
    from mlops_sdk.workspace import Workspace

DEFAULT_EXPERIMENT = "Default"
_default_workspace: Workspace | None = None


def default_workspace() -> Workspace:
    """The workspace module-level calls use: ``Workspace.open()``, opened once per process."""
    global _default_workspace
    if _default_workspace is None:
        from mlops_sdk.workspace import Workspace

        _default_workspace = Workspace.open()
    return _default_workspace


def set_workspace(workspace: Workspace | None) -> None:
    """Make module-level calls use ``workspace`` (None: open the default again on next use)."""
    global _default_workspace
    _default_workspace = workspace


def active_run() -> Run | None:
    """The most recently started run that is still active in this process, or None."""
    from mlops_sdk.run import active_runs

    runs = active_runs()
    return runs[-1] if runs else None


def _require_run() -> Run:
    run = active_run()
    if run is None:
        raise RunNotActive("no active run: call mlops.start_run() first (or use `with exp.start_run():`)")
    return run


def start_run(
    name: str | None = None,
    *,
    experiment: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
    workspace: Workspace | None = None,
) -> Run:
    """Start a run in ``experiment`` (default ``$MLOPS_EXPERIMENT`` or "Default").

    With ``nested=True`` the new run is a child of the active run; without it,
    starting a second run while one is active is an error.
    """
    parent = active_run()
    if parent is not None and not nested:
        raise RunNotActive(
            f"run {parent.id} ({parent.name}) is still active: end it with mlops.end_run(), "
            "or pass nested=True to start a child run"
        )
    ws = workspace or (parent.workspace if parent is not None else default_workspace())
    exp = ws.experiment(experiment or os.environ.get("MLOPS_EXPERIMENT") or DEFAULT_EXPERIMENT)
    return exp.start_run(name, params=params, tags=tags, parent=parent if nested else None)


def end_run(status: RunStatus | str = "FINISHED") -> None:
    """End the active run (no-op when none is active)."""
    run = active_run()
    if run is not None:
        run.end(status)


def log_metric(key: str, value: float, step: int | None = None, timestamp: float | None = None) -> None:
    """Log a metric point to the active run."""
    _require_run().log_metric(key, value, step, timestamp)


def log_metrics(metrics: Mapping[str, float], step: int | None = None, timestamp: float | None = None) -> None:
    """Log several metrics to the active run."""
    _require_run().log_metrics(metrics, step, timestamp)


def log_param(key: str, value: Any) -> None:
    """Log a param to the active run."""
    _require_run().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    """Log several params to the active run."""
    _require_run().log_params(params)


def set_tag(key: str, value: str) -> None:
    """Set a tag on the active run."""
    _require_run().set_tag(key, value)


def set_tags(tags: Mapping[str, str]) -> None:
    """Set several tags on the active run."""
    _require_run().set_tags(tags)


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> list[ArtifactEntry]:
    """Store a file or folder with the active run."""
    return _require_run().log_artifact(local_path, artifact_path)
