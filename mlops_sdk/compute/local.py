"""The built-in ``local`` compute: one subprocess per job on this machine.

Each job gets a folder ``<workspace>/.mlops/jobs/<id>/`` holding its spec, its
captured output (``output.log``) and its state (``state.json``, written by
the worker). Jobs share the machine's CPUs: a job takes ``resources["cpus"]``
(default 1) of ``max_parallel`` slots (default: the CPU count), first come
first served; the rest wait. The worker starts in its own process group so
:meth:`LocalJob.cancel` and the time limit stop everything the job started.

Limits (``resources``):

* ``timeout``: seconds from the worker's start; then the process group gets
  SIGTERM (the run ends FAILED with "exceeded its time limit"), and SIGKILL
  after a grace period.
* ``memory``: the worker's address space (``RLIMIT_AS``), set before the job's
  code is imported; allocations beyond it raise ``MemoryError``.
* ``cpus``: slots taken, and ``OMP/MKL/OPENBLAS_NUM_THREADS`` when not set.
* ``gpus``: refused when this machine has none; ``gpus=0`` hides them.

If the worker dies without ending its run (SIGKILL, a crash), the backend
ends the run itself, so no run is left RUNNING.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import attrs

from mlops_sdk.compute.base import ComputeBackend, JobHandle, JobSpec, JobState
from mlops_sdk.errors import InvalidValue, JobError

CANCEL_GRACE_SECONDS = 5.0
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def local_gpu_count() -> int:
    """GPUs this machine offers to jobs: ``CUDA_VISIBLE_DEVICES`` if set, else NVIDIA device files."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip()]
        return 0 if not ids or ids[0].strip() == "-1" else len(ids)
    try:
        return sum(1 for name in os.listdir("/dev") if re.fullmatch(r"nvidia\d+", name))
    except OSError:
        return 0


def format_bytes(n: int) -> str:
    for unit, size in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


class _Slots:
    """A first-come-first-served pool of CPU slots; a job may take several (or a fraction)."""

    def __init__(self, capacity: float) -> None:
        self.capacity = capacity
        self._free = capacity
        self._queue: collections.deque[object] = collections.deque()
        self._cond = threading.Condition()

    def acquire(self, amount: float, cancelled: threading.Event) -> bool:
        """Wait for ``amount`` slots; False if ``cancelled`` was set first."""
        amount = min(amount, self.capacity)
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while not cancelled.is_set() and not (self._queue[0] is ticket and self._free >= amount - 1e-9):
                    self._cond.wait()
                if cancelled.is_set():
                    return False
                self._free -= amount
                return True
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()

    def release(self, amount: float) -> None:
        with self._cond:
            self._free += min(amount, self.capacity)
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class LocalJob(JobHandle):
    def __init__(self, spec: JobSpec, folder: Path, slots: _Slots) -> None:
        self.spec = spec
        self.folder = folder
        self._slots = slots
        self._proc: subprocess.Popen[bytes] | None = None
        self._cancelled = threading.Event()
        self._timed_out = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._returncode: int | None = None
        self._thread = threading.Thread(target=self._run, name=f"mlops-job-{spec.id[:8]}", daemon=True)
        self._thread.start()

    # -- the job's life, in its own thread ---------------------------------------------
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        res = self.spec.resources
        if "cpus" in res:
            threads = str(max(1, math.floor(res["cpus"])))
            for var in _THREAD_VARS:
                env.setdefault(var, threads)
        if res.get("gpus") == 0:
            env["CUDA_VISIBLE_DEVICES"] = ""
        if "memory" in res:
            env.setdefault("MALLOC_ARENA_MAX", "2")  # glibc reserves 64 MB of address space per thread otherwise
        return env

    def _run(self) -> None:
        amount = float(self.spec.resources.get("cpus", 1))
        try:
            if not self._slots.acquire(amount, self._cancelled):
                return
            try:
                with self._lock:
                    if self._cancelled.is_set():
                        return
                    with open(self.folder / "output.log", "ab") as log:
                        self._proc = subprocess.Popen(
                            [sys.executable, "-m", "mlops_sdk.compute.worker", str(self.folder)],
                            cwd=self.spec.cwd,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            env=self._env(),
                            start_new_session=True,
                        )
                proc = self._proc
                timeout = self.spec.resources.get("timeout")
                try:
                    self._returncode = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._timed_out = True
                    self._stop(proc, "timeout", f"the job exceeded its time limit of {timeout:g} s")
                    self._returncode = proc.wait()
                self._end_orphaned_run()
            finally:
                self._slots.release(amount)
        finally:
            self._done.set()

    def _stop(self, proc: subprocess.Popen[bytes], reason: str, message: str) -> None:
        """SIGTERM the job's process group (the worker reads why from stop.json), SIGKILL after the grace period."""
        tmp = self.folder / "stop.json.tmp"
        tmp.write_text(json.dumps({"reason": reason, "message": message}))
        os.replace(tmp, self.folder / "stop.json")
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + CANCEL_GRACE_SECONDS
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group's stragglers too, even once the worker is gone

    def _end_orphaned_run(self) -> None:
        """End the run if the worker died before ending it (SIGKILL, a crash)."""
        info = _read_json(self.folder / "state.json")
        if info.get("state") in (JobState.SUCCEEDED.value, JobState.FAILED.value):
            return  # the worker ended its run before reporting
        if self._cancelled.is_set():
            status, error = "KILLED", "the job was cancelled"
        elif self._timed_out:
            status, error = "FAILED", f"the job exceeded its time limit of {self.spec.resources['timeout']:g} s"
        else:
            status, error = "FAILED", f"the job's worker died: {self._exit_text()}"
        from mlops_sdk.compute.worker import end_orphaned_run

        try:
            end_orphaned_run(attrs.asdict(self.spec), info.get("run_id"), status, error)
        except Exception as exc:  # the job's own outcome still stands; say why the run could not be ended
            with contextlib.suppress(OSError), open(self.folder / "output.log", "a") as log:
                log.write(f"\nmlops: could not end the job's run: {exc!r}\n")

    def _exit_text(self) -> str:
        code = self._returncode
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                text = f"killed by {signal.Signals(-code).name}"
                if "memory" in self.spec.resources:
                    text += f" (memory limit {format_bytes(self.spec.resources['memory'])})"
                return text
        return f"exit code {code}"

    # -- JobHandle ---------------------------------------------------------------------
    def state(self) -> JobState:
        if self._cancelled.is_set():
            return JobState.CANCELLED
        if self._done.is_set():
            if self._timed_out:
                return JobState.FAILED
            recorded = _read_json(self.folder / "state.json").get("state")
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
        what = f"job {self.spec.id} ({self.spec.function.qualname})"
        if self._timed_out:
            raise JobError(f"{what} exceeded its time limit of {self.spec.resources['timeout']:g} s")
        error = info.get("error") or f"the worker died ({self._exit_text()}); see job.logs()"
        raise JobError(f"{what} failed: {error}")

    def run_id(self) -> str | None:
        return _read_json(self.folder / "state.json").get("run_id")

    def logs(self) -> str:
        try:
            return (self.folder / "output.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cancel(self) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self._cancelled.set()
            proc = self._proc
        self._slots.wake()  # a job still waiting for a slot leaves the queue
        if proc is not None and proc.poll() is None:
            self._stop(proc, "cancel", "the job was cancelled")
        self._done.wait(CANCEL_GRACE_SECONDS * 2)


class LocalCompute(ComputeBackend):
    """Runs each job in a subprocess of this machine; jobs share ``max_parallel`` CPU slots."""

    def __init__(self, uri: str = "local", *, root: Path | str = ".", max_parallel: int | None = None) -> None:
        self.uri = uri
        self.root = Path(root)
        self.max_parallel = max_parallel or os.cpu_count() or 1
        self._slots = _Slots(float(self.max_parallel))

    def check_resources(self, resources: dict[str, Any]) -> None:
        """Refuse what this machine cannot provide (called before anything is recorded)."""
        cpus = os.cpu_count() or 1
        if resources.get("cpus", 0) > cpus:
            raise InvalidValue(f"the job asks for {resources['cpus']:g} CPUs but this machine has {cpus}")
        gpus = resources.get("gpus", 0)
        if gpus:
            have = local_gpu_count()
            if have == 0:
                raise InvalidValue(
                    f"the job asks for {gpus:g} GPU(s) but this machine has none "
                    "(no NVIDIA device, or CUDA_VISIBLE_DEVICES hides them); use a compute backend with GPUs"
                )
            if gpus > have:
                raise InvalidValue(f"the job asks for {gpus:g} GPUs but this machine has {have}")

    def submit(self, spec: JobSpec) -> LocalJob:
        self.check_resources(dict(spec.resources))
        folder = self.root / ".mlops" / "jobs" / spec.id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "spec.json").write_text(json.dumps(attrs.asdict(spec), indent=2))
        return LocalJob(spec, folder, self._slots)
