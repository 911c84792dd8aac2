"""The compute interface: run a function somewhere as a tracked job.

A job is described by a :class:`JobSpec` that names the function by import
path (never a pickle), its JSON parameters, and the workspace to log into.
The backend runs it as a run of that workspace, so params, metrics and
artifacts logged inside the function land where the caller can query them.

Contract:

* :meth:`ComputeBackend.submit` returns at once with a :class:`JobHandle`.
* A handle's :meth:`~JobHandle.wait` returns the final :class:`JobState`;
  :meth:`~JobHandle.result` returns the function's JSON result or raises
  :class:`mlops_sdk.errors.JobError` with the failure.
* :meth:`~JobHandle.cancel` stops the job and everything it started; the run
  ends KILLED.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from typing import Any

import attrs


class JobState(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@attrs.frozen
class FunctionRef:
    """Where to find the job's function: ``module:qualname``, or a script path for ``__main__``."""

    module: str
    qualname: str
    script: str | None = None


@attrs.frozen
class JobSpec:
    """Everything a backend needs to run a job; JSON-serialisable."""

    id: str
    function: FunctionRef
    params: Mapping[str, Any]
    resources: Mapping[str, Any]
    workspace: Mapping[str, str]  # root, tracking, storage URIs
    experiment: str
    run_name: str
    cwd: str
    sys_path: tuple[str, ...] = ()
    parent_run_id: str | None = None  # the job's run is a child of this run (sweep trials)
    tags: Mapping[str, str] = attrs.field(factory=dict)  # extra tags on the job's run


class JobHandle(abc.ABC):
    """A submitted job, as the backend tracks it."""

    spec: JobSpec

    @abc.abstractmethod
    def state(self) -> JobState:
        """Current state, without waiting."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> JobState:
        """Block until the job ends (or ``timeout`` seconds pass) and return its state."""

    @abc.abstractmethod
    def result(self) -> Any:
        """The function's return value; raise ``JobError`` when the job did not succeed."""

    @abc.abstractmethod
    def run_id(self) -> str | None:
        """The id of the run the job logs into, once it has started."""

    @abc.abstractmethod
    def logs(self) -> str:
        """Captured stdout and stderr so far."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop the job and every process it started."""


class ComputeBackend(abc.ABC):
    """Runs jobs."""

    uri: str

    @abc.abstractmethod
    def submit(self, spec: JobSpec) -> JobHandle:
        """Start a job; return at once."""
