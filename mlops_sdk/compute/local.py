"""The built-in ``local`` compute: one subprocess per job on this machine.

Each job gets a folder ``<workspace>/.mlops/jobs/<id>/`` holding its spec, its
captured output (``output.log``) and its state (``state.json``, written by
the worker). At most ``max_parallel`` jobs run at once; the rest wait. The
worker starts in its own process group so :meth:`cancel` stops everything the
job started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import attrs

from mlops_sdk.compute.base import ComputeBackend, JobHandle, JobSpec, JobState
from mlops_sdk.errors import JobError

CANCEL_GRACE_SECONDS = 5.0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


class LocalJob(JobHandle):
    def __init__(self, spec: JobSpec, folder: Path, slots: threading.Semaphore) -> None:
        self.spec = spec
        self.folder = folder
        self._slots = slots
        self._proc: subprocess.Popen[bytes] | None = None
        self._cancelled = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._returncode: int | None = None
        self._thread = threading.Thread(target=self._run, name=f"mlops-job-{spec.id[:8]}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._slots:
                with self._lock:
                    if self._cancelled:
                        return
                    log = open(self.folder / "output.log", "ab")  # noqa: SIM115 - handed to the child
                    env = dict(os.environ)
                    env["PYTHONUNBUFFERED"] = "1"
                    self._proc = subprocess.Popen(
                        [sys.executable, "-m", "mlops_sdk.compute.worker", str(self.folder)],
                        cwd=self.spec.cwd,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env=env,
                        start_new_session=True,
                    )
                    log.close()
                self._returncode = self._proc.wait()
        finally:
            self._done.set()

    def state(self) -> JobState:
        if self._cancelled:
            return JobState.CANCELLED
        recorded = _read_json(self.folder / "state.json").get("state")
        if self._done.is_set():
            if recorded in (JobState.SUCCEEDED.value, JobState.FAILED.value):
                return JobState(recorded)
            return JobState.FAILED
        if self._proc is None:
            return JobState.PENDING
        return JobState.RUNNING

    def wait(self, timeout: float | None = None) -> JobState:
        self._done.wait(timeout)
        return self.state()

    def result(self) -> Any:
        state = self.wait()
        info = _read_json(self.folder / "state.json")
        if state is JobState.SUCCEEDED:
            return info.get("result")
        if state is JobState.CANCELLED:
            raise JobError(f"job {self.spec.id} was cancelled")
        error = info.get("error") or f"the worker exited with code {self._returncode}; see job.logs()"
        raise JobError(f"job {self.spec.id} ({self.spec.function.qualname}) failed: {error}")

    def run_id(self) -> str | None:
        return _read_json(self.folder / "state.json").get("run_id")

    def logs(self) -> str:
        try:
            return (self.folder / "output.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + CANCEL_GRACE_SECONDS
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._done.wait(CANCEL_GRACE_SECONDS)


class LocalCompute(ComputeBackend):
    """Runs each job in a subprocess of this machine, ``max_parallel`` at a time."""

    def __init__(self, uri: str = "local", *, root: Path | str = ".", max_parallel: int | None = None) -> None:
        self.uri = uri
        self.root = Path(root)
        self.max_parallel = max_parallel or os.cpu_count() or 1
        self._slots = threading.Semaphore(self.max_parallel)

    def submit(self, spec: JobSpec) -> LocalJob:
        folder = self.root / ".mlops" / "jobs" / spec.id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "spec.json").write_text(json.dumps(attrs.asdict(spec), indent=2))
        return LocalJob(spec, folder, self._slots)
