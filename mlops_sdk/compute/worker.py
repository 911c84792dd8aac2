"""Runs one job: ``python -m mlops_sdk.compute.worker JOB_FOLDER``.

Imports the function by reference (a module, or the submitting script run
under another ``__name__``, like multiprocessing's spawn), opens the
workspace, and calls the function inside a run. The result must be JSON.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
            result = fn(**spec["params"])
            try:
                encoded = json.loads(json.dumps(result, allow_nan=True))
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"the job function returned {type(result).__name__}, which is not JSON; "
                    "return numbers, strings, lists or dicts (log models and files to the run instead)"
                ) from exc
    except BaseException as exc:
        report(state="FAILED", error=f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        ws.close()
        return 1
    report(state="SUCCEEDED", result=encoded)
    ws.close()
    return 0


def main(folder_arg: str) -> int:
    folder = Path(folder_arg)
    spec = json.loads((folder / "spec.json").read_text())
    return execute_spec(spec, lambda **values: _write_state(folder, **values))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
