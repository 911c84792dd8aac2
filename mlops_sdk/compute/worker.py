"""Runs one job: ``python -m mlops_sdk.compute.worker JOB_FOLDER``.

Imports the function by reference (a module, or the submitting script run
under another ``__name__``, like multiprocessing's spawn), opens the
workspace, and calls the function inside a run. The result must be JSON.

:func:`execute_spec` and :func:`end_orphaned_run` are shared by every compute
backend; :func:`apply_memory_limit` and the SIGTERM handling in :func:`main`
belong to the local backend's one-process-per-job worker.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

SWEEP_METRIC_TAG = "mlops.sweep_metric"  # on a sweep trial: log the returned dict's numbers as metrics


class TimeLimitExceeded(SystemExit):
    """Raised in the job's main thread when the backend stops it for its time limit (the run ends FAILED)."""


def _write_state(folder: Path, **values: Any) -> None:
    path = folder / "state.json"
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        state = {}
    state.update(values)
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def _load_function(ref: dict[str, Any]) -> Any:
    if ref.get("script"):
        namespace = runpy.run_path(ref["script"], run_name="__mlops_job__")
        obj: Any = namespace[ref["qualname"].split(".")[0]]
        for part in ref["qualname"].split(".")[1:]:
            obj = getattr(obj, part)
        return obj
    obj = importlib.import_module(ref["module"])
    for part in ref["qualname"].split("."):
        obj = getattr(obj, part)
    return obj


def apply_memory_limit(limit: int) -> None:
    """Cap this process's address space at ``limit`` bytes (``RLIMIT_AS``; soft limit only)."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _memory_text(spec: dict[str, Any]) -> str:
    limit = (spec.get("resources") or {}).get("memory")
    if not limit:
        return "MemoryError: the job ran out of memory"
    from mlops_sdk.compute.local import format_bytes

    return f"MemoryError: the job exceeded its memory limit of {format_bytes(int(limit))} (resources['memory'])"


def _log_returned_metrics(run: Any, result: Any) -> None:
    """A sweep trial may return its metrics instead of logging them: log the numbers it did not log."""
    import math

    if not isinstance(result, dict):
        return
    logged = run.metrics
    values = {
        k: float(v)
        for k, v in result.items()
        if isinstance(k, str) and k not in logged and isinstance(v, (int, float)) and not isinstance(v, bool)
        and math.isfinite(v)
    }
    if values:
        run.log_metrics(values)


def execute_spec(spec: dict[str, Any], report: Callable[..., None]) -> int:
    """Run one job described by a JobSpec dict; the part every compute backend shares.

    ``report(**values)`` receives ``state="RUNNING", run_id=...`` when the run
    starts, then ``state="SUCCEEDED", result=...`` or ``state="FAILED",
    error=...``. Returns the process exit code to use (0 or 1).
    """
    for entry in reversed(spec.get("sys_path") or []):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    import mlops_sdk

    try:
        fn = _load_function(spec["function"])
    except Exception as exc:
        report(state="FAILED", error=f"cannot import the job function: {exc!r}")
        traceback.print_exc()
        return 1
    ws = mlops_sdk.Workspace.open(spec["workspace"]["root"], tracking=spec["workspace"]["tracking"], storage=spec["workspace"]["storage"])
    exp = ws.experiment(spec["experiment"])
    tags = {"mlops.job_id": spec["id"], **(spec.get("tags") or {})}
    try:
        with exp.start_run(
            name=spec["run_name"], params=dict(spec["params"]), tags=tags, parent=spec.get("parent_run_id")
        ) as run:
            report(state="RUNNING", run_id=run.id)
            try:
                result = fn(**spec["params"])
            except MemoryError as exc:  # say which limit, in the run's error too
                raise MemoryError(_memory_text(spec).removeprefix("MemoryError: ")) from exc
            if tags.get(SWEEP_METRIC_TAG):
                _log_returned_metrics(run, result)
            try:
                encoded = json.loads(json.dumps(result, allow_nan=True))
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"the job function returned {type(result).__name__}, which is not JSON; "
                    "return numbers, strings, lists or dicts (log models and files to the run instead)"
                ) from exc
    except BaseException as exc:
        error = _memory_text(spec) if isinstance(exc, MemoryError) else f"{type(exc).__name__}: {exc}"
        report(state="FAILED", error=error)
        traceback.print_exc()
        ws.close()
        return 1
    report(state="SUCCEEDED", result=encoded)
    ws.close()
    return 0


def end_orphaned_run(spec: dict[str, Any], run_id: str | None, status: str, error: str) -> str | None:
    """End a job's run that its worker left RUNNING (it was killed or crashed); return the run id.

    For backends, after the job's process is gone. ``run_id`` may be None when
    the worker died before reporting it: the run is then found by its
    ``mlops.job_id`` tag. A run that already ended is left as it is.
    """
    import mlops_sdk
    from mlops_sdk.records import RunStatus

    ws = mlops_sdk.Workspace.open(
        spec["workspace"]["root"], tracking=spec["workspace"]["tracking"], storage=spec["workspace"]["storage"]
    )
    try:
        if run_id is None:
            found = ws.runs(f"tags.`mlops.job_id` = '{spec['id']}'")
            if not found:
                return None
            run_id = found[0].id
        record = ws.tracking.get_run(run_id)
        if record.status is RunStatus.RUNNING:
            ws.tracking.end_run(run_id, RunStatus(status), time.time(), error)
        return run_id
    finally:
        ws.close()


def _handle_sigterm(folder: Path) -> None:
    """SIGTERM from the backend: a time limit ends the run FAILED, anything else (cancel) KILLED."""

    def handler(signum: int, frame: Any) -> None:
        from mlops_sdk import run as _run

        stop: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            stop = json.loads((folder / "stop.json").read_text())
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once is enough; SIGKILL follows if it hangs
        if stop.get("reason") == "timeout":
            raise TimeLimitExceeded(str(stop.get("message") or "the job exceeded its time limit"))
        _run._terminated = True
        raise _run.Terminated(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(folder_arg: str) -> int:
    folder = Path(folder_arg)
    spec = json.loads((folder / "spec.json").read_text())
    memory = (spec.get("resources") or {}).get("memory")
    if memory:
        apply_memory_limit(int(memory))
    _handle_sigterm(folder)
    return execute_spec(spec, lambda **values: _write_state(folder, **values))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
