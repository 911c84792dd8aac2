"""``ws.submit(fn, params)``: run a function on the workspace's compute backend.

The function travels by reference (module and name, or the script that
defines it), never as a pickle; params and the result travel as JSON.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import uuid
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_sdk.compute.base import ComputeBackend, FunctionRef, JobHandle, JobSpec, JobState
from mlops_sdk.errors import InvalidValue, JobError, MlopsError

if TYPE_CHECKING:
    from mlops_sdk.run import Run
    from mlops_sdk.workspace import Workspace

RESOURCE_KEYS = ("cpus", "gpus", "memory", "timeout")
_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|)\s*$")


def parse_memory(value: object) -> int:
    """Bytes from ``536870912``, ``"512MB"``, ``"512MiB"``, ``"2G"``, ``"1.5GiB"`` (MB = 10^6, MiB = 2^20)."""
    if isinstance(value, bool):
        raise InvalidValue(f"resources['memory'] must be bytes or a size like '512MB', got {value!r}")
    if isinstance(value, int):
        number: float = value
    elif isinstance(value, float) and math.isfinite(value):
        number = value
    elif isinstance(value, str) and (m := _SIZE.match(value)) and m.group(2).lower() in _UNITS:
        number = float(m.group(1)) * _UNITS[m.group(2).lower()]
    else:
        raise InvalidValue(
            f"resources['memory'] must be bytes or a size like '512MB', '2GiB', got {value!r}"
        )
    if number <= 0:
        raise InvalidValue(f"resources['memory'] must be positive, got {value!r}")
    return int(number)


def parse_duration(value: object) -> float:
    """Seconds from ``30``, ``"90s"``, ``"10m"``, ``"2h"``."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m is None:
            raise InvalidValue(f"resources['timeout'] must be seconds or a duration like '10m', got {value!r}")
        value = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    return float(_number("timeout", value, zero_ok=False))


def _number(key: str, value: object, *, zero_ok: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidValue(f"resources[{key!r}] must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        raise InvalidValue(f"resources[{key!r}] must be {'>= 0' if zero_ok else 'positive'}, got {value!r}")
    return value


def validate_resources(resources: Mapping[str, Any], backend_keys: Collection[str] = ()) -> dict[str, Any]:
    """Check a ``resources`` mapping and normalise it: ``memory`` in bytes, ``timeout`` in seconds.

    Keys: ``cpus`` (> 0), ``gpus`` (>= 0), ``memory`` (bytes or ``"512MB"``),
    ``timeout`` (seconds > 0, or ``"90s"``, ``"10m"``, ``"2h"``). Whether the machine can provide them is the
    compute backend's check. A backend may accept more keys (SageMaker's
    ``instance_type``, ``inputs``…) by listing them in its ``resource_keys``
    attribute; those pass through unchanged if they are JSON values, and the
    backend's ``check_resources`` validates them.
    """
    if not isinstance(resources, Mapping):
        raise InvalidValue(f"resources must be a dict, got {type(resources).__name__}")
    extra = frozenset(backend_keys) - frozenset(RESOURCE_KEYS)
    unknown = sorted(str(k) for k in resources if k not in RESOURCE_KEYS and k not in extra)
    if unknown:
        known = [*RESOURCE_KEYS, *sorted(extra)]
        raise InvalidValue(
            f"unknown resource {', '.join(map(repr, unknown))}: this compute backend takes {', '.join(known)}"
        )
    out: dict[str, Any] = {}
    for key, value in resources.items():
        if value is None:
            continue
        if key in extra:
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise InvalidValue(f"resources[{key!r}] must be a JSON value: {exc}") from exc
            out[key] = value
        elif key == "memory":
            out[key] = parse_memory(value)
        elif key == "timeout":
            out[key] = parse_duration(value)
        else:
            out[key] = _number(key, value, zero_ok=key == "gpus")
    return out


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
        """Wait until the job ends, or at most ``timeout`` seconds; return its state then.

        Never raises for a failed job (``result`` does): compare the state, or
        check ``state.is_terminal`` after a timed wait.
        """
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or math.isnan(timeout) or timeout < 0
        ):
            raise InvalidValue(f"wait timeout must be None or seconds >= 0, got {timeout!r}")
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
    experiment: str | None,
    name: str | None,
    parent: Run | str | None = None,
    tags: Mapping[str, str] | None = None,
    compute: ComputeBackend | None = None,
) -> Job:
    """Start ``fn(**params)`` as a job; see :meth:`Workspace.submit`."""
    if not callable(fn):
        raise InvalidValue(f"submit needs a function, got {type(fn).__name__}")
    if not isinstance(params, Mapping):
        raise InvalidValue(f"job params must be a dict, got {type(params).__name__}")
    try:
        json.dumps(dict(params), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidValue(f"job params must be JSON values: {exc}") from exc
    backend = compute if compute is not None else workspace.compute
    checked = validate_resources(resources, getattr(backend, "resource_keys", ()))
    ref = function_ref(fn)
    parent_id = _parent_id(workspace, parent)
    if experiment is None:
        experiment = (
            workspace.tracking.get_experiment(workspace.get_run(parent_id).experiment_id).name
            if parent_id is not None
            else "jobs"
        )
    check = getattr(backend, "check_resources", None)
    if check is not None:
        check(checked)
    job_id = uuid.uuid4().hex
    workspace.experiment(experiment)  # validates the name, creates it once
    spec = JobSpec(
        id=job_id,
        function=ref,
        params=dict(params),
        resources=checked,
        workspace={"root": str(workspace.root), "tracking": workspace.config.tracking, "storage": workspace.config.storage},
        experiment=experiment,
        run_name=name or f"{ref.qualname}-{job_id[:6]}",
        cwd=os.getcwd(),
        sys_path=tuple(p for p in sys.path if p and os.path.isdir(p)),
        parent_run_id=parent_id,
        tags=dict(tags or {}),
    )
    try:
        handle = backend.submit(spec)
    except MlopsError:
        raise
    except Exception as exc:
        raise JobError(f"compute backend {backend.uri!r} could not start the job: {exc}") from exc
    return Job(workspace, handle)


def _parent_id(workspace: Workspace, parent: Run | str | None) -> str | None:
    if parent is None:
        return None
    from mlops_sdk.run import Run

    if isinstance(parent, Run):
        return parent.id
    if not isinstance(parent, str):
        raise InvalidValue(f"parent must be a Run or a run id, got {type(parent).__name__}")
    return workspace.get_run(parent).id  # RunNotFound for an unknown id
