"""``ws.submit(fn, params)``: run a function on the workspace's compute backend.

The function travels by reference (module and name, or the script that
defines it), never as a pickle; params and the result travel as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_sdk.compute.base import FunctionRef, JobHandle, JobSpec, JobState
from mlops_sdk.errors import InvalidValue, JobError

if TYPE_CHECKING:
    from mlops_sdk.run import Run
    from mlops_sdk.workspace import Workspace


def function_ref(fn: Callable[..., Any]) -> FunctionRef:
    """How a worker process will find ``fn`` again."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise InvalidValue(
            f"{fn!r} cannot be run as a job: define it at the top level of a module or script "
            "(lambdas and nested functions cannot be found again by another process)"
        )
    if module == "__main__":
        script = getattr(sys.modules["__main__"], "__file__", None)
        if not script:
            raise InvalidValue(
                f"{qualname} is defined in an interactive session; move it into a .py module so "
                "the job process can import it"
            )
        return FunctionRef(module, qualname, str(Path(script).resolve()))
    return FunctionRef(module, qualname)


class Job:
    """A submitted job: ``wait()``, ``result``, ``logs()``, ``cancel()``, and its ``run``."""

    def __init__(self, workspace: Workspace, handle: JobHandle) -> None:
        self.workspace = workspace
        self.handle = handle

    @property
    def id(self) -> str:
        return self.handle.spec.id

    @property
    def status(self) -> JobState:
        return self.handle.state()

    def wait(self, timeout: float | None = None) -> JobState:
        """Wait for the job to end (or ``timeout`` seconds); returns its state."""
        return self.handle.wait(timeout)

    @property
    def result(self) -> Any:
        """The function's return value (waits for the job); ``JobError`` if it failed."""
        return self.handle.result()

    @property
    def run(self) -> Run | None:
        """The run the job logged into, once it has started."""
        run_id = self.handle.run_id()
        return None if run_id is None else self.workspace.get_run(run_id)

    def logs(self) -> str:
        """Captured stdout and stderr."""
        return self.handle.logs()

    def cancel(self) -> None:
        """Stop the job and everything it started."""
        self.handle.cancel()

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, status={self.status.value})"


def submit(
    workspace: Workspace,
    fn: Callable[..., Any],
    params: Mapping[str, Any],
    resources: Mapping[str, Any],
    *,
    experiment: str,
    name: str | None,
) -> Job:
    if not callable(fn):
        raise InvalidValue(f"submit needs a function, got {type(fn).__name__}")
    try:
        json.dumps(dict(params), allow_nan=False)
        json.dumps(dict(resources), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidValue(f"job params and resources must be JSON values: {exc}") from exc
    ref = function_ref(fn)
    job_id = uuid.uuid4().hex
    workspace.experiment(experiment)  # validates the name, creates it once
    spec = JobSpec(
        id=job_id,
        function=ref,
        params=dict(params),
        resources=dict(resources),
        workspace={"root": str(workspace.root), "tracking": workspace.config.tracking, "storage": workspace.config.storage},
        experiment=experiment,
        run_name=name or f"{ref.qualname}-{job_id[:6]}",
        cwd=os.getcwd(),
        sys_path=tuple(p for p in sys.path if p and os.path.isdir(p)),
    )
    try:
        handle = workspace.compute.submit(spec)
    except Exception as exc:
        from mlops_sdk.errors import MlopsError

        if isinstance(exc, MlopsError):
            raise
        raise JobError(f"compute backend {workspace.config.compute!r} could not start the job: {exc}") from exc
    return Job(workspace, handle)
