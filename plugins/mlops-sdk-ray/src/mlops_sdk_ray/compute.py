"""Compute backend ``ray://``: each job is one Ray task.

URIs (the query string is optional):

* ``ray://local?num_cpus=2&num_gpus=0`` starts a Ray instance in this process
  (``ray.init(address="local", include_dashboard=False)``), or joins the one
  this process already started; for development and tests.
* ``ray://auto`` joins the Ray cluster started on this machine with
  ``ray start --head`` (``ray.init(address="auto")``).
* ``ray://HOST:PORT`` connects to a remote cluster through Ray Client
  (``ray.init(address="ray://HOST:PORT")``; the head's client port, 10001 by
  default). Needs ``pip install 'mlops-sdk-ray[client]'``.

Other query parameters: ``namespace``, ``object_store_memory`` (bytes, local
only), ``working_dir`` (shipped to the workers as the job's ``runtime_env``),
``cancel_grace`` (seconds a cancelled job gets to end its run before it is
killed, default 3), ``start_allowance`` (seconds a job with a ``timeout``
may take, beyond it, to start its run: imports and opening the workspace;
default 120) and ``check_resources=false`` (skip the feasibility check,
for autoscaling clusters).

A job's task calls :func:`mlops_sdk.compute.worker.execute_spec`, the job body
every backend shares, so the run, its params, metrics and artifacts land in
the workspace named by the job spec: the workers must reach the workspace's
tracking and storage (on one machine they share the file system; a cluster
needs e.g. PostgreSQL and S3). The function travels by reference
(``module:qualname`` or the script path) and params/results as JSON, never as
a pickle of user code. The task sends its state (RUNNING with the run id) and
its captured stdout/stderr to a small job-board actor while it runs, and
returns the outcome (JSON) with the full log when it ends.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import attrs
import ray
import ray.exceptions
from mlops_sdk.compute.base import ComputeBackend, JobHandle, JobSpec, JobState
from mlops_sdk.errors import BackendError, ConfigError, InvalidValue, JobError, MissingDependency

POLL_SECONDS = 0.2
LOG_PUSH_SECONDS = 0.5
MAX_LOG_CHARS = 4_000_000  # the tail of a job's output that is kept
DEFAULT_CANCEL_GRACE = 3.0
DEFAULT_START_ALLOWANCE = 120.0  # beyond resources["timeout"], for a job to start its run
KILL_WAIT_SECONDS = 30.0
NODES_CACHE_SECONDS = 5.0

RESOURCE_KEYS = ("cpus", "gpus", "memory", "timeout")

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4,
}  # fmt: skip
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|)\s*$")


# -- URIs and resources ---------------------------------------------------------------------
@attrs.frozen
class RayTarget:
    """What a ``ray://`` URI names."""

    kind: str  # "local", "auto" or "client"
    address: str  # what ray.init gets: "local", "auto" or "ray://HOST:PORT"
    num_cpus: int | None = None
    num_gpus: int | None = None
    object_store_memory: int | None = None
    namespace: str | None = None
    working_dir: str | None = None
    cancel_grace: float = DEFAULT_CANCEL_GRACE
    start_allowance: float = DEFAULT_START_ALLOWANCE
    check_resources: bool = True
    reuse_workers: bool = False


def _flag(uri: str, options: Mapping[str, str], key: str, default: bool) -> bool:
    value = options.get(key, "true" if default else "false").lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{uri!r}: {key} must be true or false, got {value!r}")
    return value in ("true", "1", "yes")


def _seconds(uri: str, options: Mapping[str, str], key: str, default: float) -> float:
    """A URI option that is a non-negative number of seconds."""
    try:
        value = float(options.get(key, default))
    except ValueError:
        raise ConfigError(f"{uri!r}: {key} must be a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{uri!r}: {key} must be a non-negative number of seconds")
    return value


def parse_uri(uri: str) -> RayTarget:
    """``ray://local?num_cpus=2`` → :class:`RayTarget`; a bad URI raises ``ConfigError``."""
    scheme, sep, rest = uri.partition("://")
    if scheme.lower() != "ray" or not sep:
        raise ConfigError(
            f"not a Ray compute URI: {uri!r}; use ray://local, ray://auto or ray://HOST:PORT"
        )
    location, _, query = rest.partition("?")
    location = location.rstrip("/")
    options: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key in options:
            raise ConfigError(f"{uri!r}: {key!r} is given twice")
        options[key] = value
    known = {
        "num_cpus", "num_gpus", "object_store_memory", "namespace", "working_dir", "cancel_grace", "start_allowance",
        "check_resources", "reuse_workers",
    }  # fmt: skip
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"{uri!r}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )

    def count(key: str) -> int | None:
        if key not in options:
            return None
        try:
            value = int(options[key])
        except ValueError:
            raise ConfigError(
                f"{uri!r}: {key} must be a whole number, got {options[key]!r}"
            ) from None
        if value < 0:
            raise ConfigError(f"{uri!r}: {key} must not be negative")
        return value

    if location == "local":
        kind, address = "local", "local"
    elif location == "auto":
        kind, address = "auto", "auto"
    else:
        host, colon, port = location.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
            raise ConfigError(
                f"{uri!r}: expected ray://local, ray://auto or ray://HOST:PORT (the Ray Client port of the "
                "head node, 10001 by default)"
            )
        kind, address = "client", f"ray://{host}:{port}"
    if kind != "local":
        for key in ("num_cpus", "num_gpus", "object_store_memory"):
            if key in options:
                raise ConfigError(
                    f"{uri!r}: {key} applies to ray://local only (a cluster has its own resources)"
                )
    grace = _seconds(uri, options, "cancel_grace", DEFAULT_CANCEL_GRACE)
    allowance = _seconds(uri, options, "start_allowance", DEFAULT_START_ALLOWANCE)
    return RayTarget(
        kind=kind,
        address=address,
        num_cpus=count("num_cpus"),
        num_gpus=count("num_gpus"),
        object_store_memory=count("object_store_memory"),
        namespace=options.get("namespace") or None,
        working_dir=options.get("working_dir") or None,
        cancel_grace=grace,
        start_allowance=allowance,
        check_resources=_flag(uri, options, "check_resources", True),
        reuse_workers=_flag(uri, options, "reuse_workers", False),
    )


def parse_memory(value: Any) -> int:
    """Bytes from ``2_000_000_000``, ``"512MB"``, ``"2GiB"``, ``"1.5G"`` (K/M/G/T decimal, Ki/Mi/Gi/Ti binary)."""
    if isinstance(value, bool):
        raise InvalidValue(
            f"resources['memory'] must be bytes or a size like '2GiB', got {value!r}"
        )
    if isinstance(value, int | float):
        number, unit = float(value), ""
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        number, unit = float(match.group(1)), match.group(2).lower()
    else:
        raise InvalidValue(
            f"resources['memory'] must be bytes or a size like '2GiB', got {value!r}"
        )
    if unit not in _UNITS or not math.isfinite(number) or number <= 0:
        raise InvalidValue(
            f"resources['memory'] must be a positive size like 512MB or 2GiB, got {value!r}"
        )
    return int(number * _UNITS[unit])


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``"90s"``, ``"10m"``, ``"2h"``."""
    if isinstance(value, bool):
        raise InvalidValue(f"resources['timeout'] must be seconds, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    else:
        raise InvalidValue(
            f"resources['timeout'] must be seconds or a duration like '10m', got {value!r}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidValue(
            f"resources['timeout'] must be a positive number of seconds, got {value!r}"
        )
    return seconds


@attrs.frozen
class TaskResources:
    """A job's resources as Ray sees them."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None
    timeout: float | None = None

    def demand(self) -> dict[str, float]:
        """The request in Ray's resource names (``CPU``, ``GPU``, ``memory``)."""
        need = {"CPU": self.num_cpus, "GPU": self.num_gpus, "memory": float(self.memory or 0)}
        return {k: v for k, v in need.items() if v}

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``.options()`` of the remote function."""
        opts: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory:
            opts["memory"] = self.memory
        return opts


def _amount(key: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidValue(f"resources[{key!r}] must be a non-negative number, got {value!r}")
    if value > 1 and value != int(value):
        raise InvalidValue(
            f"resources[{key!r}]: Ray takes fractions below 1 or whole numbers, got {value!r}"
        )
    return float(value)


def task_resources(resources: Mapping[str, Any]) -> TaskResources:
    """Map ``JobSpec.resources`` (cpus, gpus, memory, timeout) onto Ray's task options.

    ``ws.submit`` has already validated and normalised them (memory in bytes,
    timeout in seconds); sizes and durations given as text are accepted too,
    for callers of :meth:`RayCompute.submit` itself.
    """
    unknown = sorted(str(k) for k in resources if k not in RESOURCE_KEYS)
    if unknown:
        raise InvalidValue(
            f"the ray compute backend does not know resource(s) {', '.join(map(repr, unknown))}; "
            f"use {', '.join(RESOURCE_KEYS)}"
        )
    cpus = resources.get("cpus")
    gpus = resources.get("gpus")
    return TaskResources(
        num_cpus=1.0 if cpus is None else _amount("cpus", cpus),
        num_gpus=0.0 if gpus is None else _amount("gpus", gpus),
        memory=parse_memory(resources["memory"]) if resources.get("memory") is not None else None,
        timeout=parse_duration(resources["timeout"])
        if resources.get("timeout") is not None
        else None,
    )


# -- connecting -------------------------------------------------------------------------------
_connect_lock = threading.Lock()
_connected: RayTarget | None = None  # what this module connected the process to


def connect(target: RayTarget) -> None:
    """Connect this process to the Ray instance ``target`` names (one per process, as Ray wants)."""
    global _connected
    with _connect_lock:
        if ray.is_initialized():
            if _connected is None or _connected.address == target.address or target.kind == "local":
                # Someone (the user, a test fixture, an earlier backend) already connected: join.
                return
            raise ConfigError(
                f"this process is already connected to Ray at {_connected.address!r}; one process can use "
                f"one Ray cluster, so {target.address!r} cannot be used too (call ray.shutdown() first)"
            )
        if target.kind == "client" and importlib.util.find_spec("grpc") is None:
            raise MissingDependency(
                f"Ray Client ({target.address}) needs grpcio: pip install 'mlops-sdk-ray[client]' "
                "(or 'ray[client]')"
            )
        kwargs: dict[str, Any] = {"namespace": target.namespace, "logging_level": logging.WARNING}
        if target.working_dir:
            kwargs["runtime_env"] = {"working_dir": target.working_dir}
        if target.kind == "local":
            kwargs.update(
                num_cpus=target.num_cpus,
                num_gpus=target.num_gpus,
                object_store_memory=target.object_store_memory,
                include_dashboard=False,
                log_to_driver=False,  # the job's output is captured and returned by job.logs()
            )
        elif target.kind == "auto":
            kwargs.update(log_to_driver=False)
        try:
            ray.init(address=target.address, **kwargs)
        except Exception as exc:
            raise BackendError(
                f"ray compute: could not connect to Ray at {target.address!r}: {exc}"
            ) from exc
        _connected = target


def disconnect() -> None:
    """``ray.shutdown()``, and forget the connection (stops a ``ray://local`` instance this process started)."""
    global _connected, _board, _board_job
    with _connect_lock:
        _board = None
        _board_job = None
        _connected = None
        ray.shutdown()


# -- the job board: state and live logs of running jobs --------------------------------------
class JobBoard:
    """An actor holding, per job id, the state the task reported and its output so far."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, str] = {}

    def update(self, job_id: str, values: dict[str, Any]) -> None:
        entry = self.jobs.setdefault(job_id, {})
        if values.get("state") == "RUNNING" and "started_at" not in entry:
            entry["started_at"] = time.time()
        entry.update(values)

    def append(self, job_id: str, text: str) -> None:
        logs = self.logs.get(job_id, "") + text
        self.logs[job_id] = logs[-MAX_LOG_CHARS:]

    def get(self, job_id: str) -> dict[str, Any]:
        return {**self.jobs.get(job_id, {}), "logs": self.logs.get(job_id, "")}

    def forget(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)
        self.logs.pop(job_id, None)


_board: Any = None
_board_job: str | None = None


def job_board() -> Any:
    """This driver's job-board actor (no CPU reserved), created once per Ray connection."""
    global _board, _board_job
    with _connect_lock:
        current = ray.get_runtime_context().get_job_id()
        if _board is None or _board_job != current:
            _board = ray.remote(num_cpus=0, max_restarts=0)(JobBoard).remote()
            _board_job = current
        return _board


# -- the task ---------------------------------------------------------------------------------
class _Capture:
    """Send fd 1 and 2 (Python's and C's output, and child processes') to a file while a job runs.

    A thread pushes new output to the job board every ``LOG_PUSH_SECONDS``, so
    ``job.logs()`` shows it while the job runs; :attr:`text` is the whole log.
    """

    def __init__(self, board: Any, job_id: str) -> None:
        self.board = board
        self.job_id = job_id
        self.text = ""
        self._stop = threading.Event()

    def __enter__(self) -> _Capture:
        fd, self.path = tempfile.mkstemp(prefix="mlops-ray-job-", suffix=".log")
        os.close(fd)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        self._saved_fds = (os.dup(1), os.dup(2))
        self._saved_streams = (sys.stdout, sys.stderr)
        self._file = open(self.path, "a", buffering=1, encoding="utf-8", errors="replace")
        os.dup2(self._file.fileno(), 1)
        os.dup2(self._file.fileno(), 2)
        sys.stdout = sys.stderr = self._file
        self._offset = 0
        self._pump = threading.Thread(target=self._push_loop, name="mlops-ray-logs", daemon=True)
        self._pump.start()
        return self

    def _read_new(self) -> str:
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        return data.decode("utf-8", errors="replace")

    def _push_loop(self) -> None:
        while not self._stop.wait(LOG_PUSH_SECONDS):
            with contextlib.suppress(Exception):
                self._file.flush()
                new = self._read_new()
                if new:
                    self.board.append.remote(self.job_id, new)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._pump.join(timeout=5)
        with contextlib.suppress(Exception):
            self._file.flush()
        sys.stdout, sys.stderr = self._saved_streams
        os.dup2(self._saved_fds[0], 1)
        os.dup2(self._saved_fds[1], 2)
        for saved in self._saved_fds:
            os.close(saved)
        self._file.close()
        rest = self._read_new()
        if rest:  # the whole log also comes back with the outcome
            with contextlib.suppress(Exception):
                self.board.append.remote(self.job_id, rest)
        self.text = Path(self.path).read_text(encoding="utf-8", errors="replace")[-MAX_LOG_CHARS:]
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class _TimeLimit:
    """Stop the job's function ``seconds`` after its run started, with ``TimeLimitExceeded``.

    The clock starts when the run does (``start``), not with the task: a cold
    worker's imports and the workspace's opening are not the job's time, and a
    limit that fired before the run existed would leave no run to say why the
    job failed. The driver's watch counts from the same moment.

    The exception is raised asynchronously in the task's thread, so it lands at
    the next Python instruction (a blocking call finishes first): the run then
    ends FAILED with the reason. The driver kills the task if that does not
    happen within the cancel grace period. After ``stop`` returns no exception
    is raised any more.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Start the clock in the calling thread (the job's); later calls do nothing."""
        if self.seconds is None or self._started:
            return
        self._started = True
        self._target = threading.get_ident()
        threading.Thread(target=self._watch, name="mlops-ray-timeout", daemon=True).start()

    def _watch(self) -> None:
        assert self.seconds is not None
        if self._stopped.wait(self.seconds):
            return
        import ctypes

        from mlops_sdk.compute.worker import TimeLimitExceeded

        message = time_limit_text(self.seconds)

        class JobTimeLimit(TimeLimitExceeded):
            def __init__(self) -> None:
                super().__init__(message)

        with self._lock:
            if self._stopped.is_set():
                return
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._target), ctypes.py_object(JobTimeLimit)
            )

    def stop(self) -> None:
        with self._lock:
            self._stopped.set()


def time_limit_text(seconds: float) -> str:
    return f"the job exceeded its time limit of {seconds:g} s (resources['timeout'])"


def run_job(spec_json: str, board: Any) -> str:
    """The body of a job's Ray task: ``execute_spec`` with reports to the board; returns the outcome as JSON."""
    from mlops_sdk.compute.worker import TimeLimitExceeded, execute_spec

    spec = json.loads(spec_json)
    job_id = spec["id"]
    outcome: dict[str, Any] = {}

    timeout = (spec.get("resources") or {}).get("timeout")
    limit = _TimeLimit(parse_duration(timeout) if timeout is not None else None)

    def report(**values: Any) -> None:
        # Record first, then start or stop the clock: a time limit that lands inside
        # stop() finds the outcome already recorded (run_job catches it below).
        # Fire and forget: a task blocked in ray.get hands its CPUs back to Ray, which
        # would start another job on them. Calls from one caller arrive in order.
        outcome.update(values)
        board.update.remote(job_id, values)
        state = values.get("state")
        if state == "RUNNING":  # the run exists: the job's time starts now
            limit.start()
        elif state is not None:  # the run has ended
            limit.stop()

    board.update.remote(job_id, {"state": "STARTING"})  # the driver bounds the start-up from here
    old_cwd = os.getcwd()
    with _Capture(board, job_id) as capture:
        try:
            if spec.get("cwd") and os.path.isdir(spec["cwd"]):
                os.chdir(spec["cwd"])
            try:
                try:
                    outcome["exit_code"] = execute_spec(spec, report)
                finally:
                    limit.stop()  # inside the try: a limit that fires right now is caught below
            except TimeLimitExceeded:
                # The limit fired as the job ended (after its run was recorded, or inside
                # stop()). What the job reported stands; otherwise it failed on its limit.
                limit.stop()
                if outcome.get("state") not in ("SUCCEEDED", "FAILED"):
                    assert limit.seconds is not None
                    outcome.update(state="FAILED", error=time_limit_text(limit.seconds))
                outcome["exit_code"] = 0 if outcome["state"] == "SUCCEEDED" else 1
        finally:
            os.chdir(old_cwd)
    outcome.setdefault("state", "FAILED")
    outcome["logs"] = capture.text
    return json.dumps(outcome, allow_nan=True)


_remote_run_job: dict[bool, Any] = {}


def remote_run_job(reuse_workers: bool) -> Any:
    """:func:`run_job` as a Ray remote function.

    ``max_retries=0``: a job is a tracked run, and re-running it after a crash
    would log a second run. Unless ``reuse_workers``, ``max_calls=1`` gives each
    job a fresh worker process (fresh imports, memory and GPU memory released),
    like the local backend's process per job.
    """
    if reuse_workers not in _remote_run_job:
        options: dict[str, Any] = {"max_retries": 0}
        if not reuse_workers:
            options["max_calls"] = 1
        _remote_run_job[reuse_workers] = ray.remote(**options)(run_job)
    return _remote_run_job[reuse_workers]


# -- handles and the backend -------------------------------------------------------------------
class RayJob(JobHandle):
    """A job running as a Ray task."""

    def __init__(self, backend: RayCompute, spec: JobSpec, resources: TaskResources) -> None:
        self.spec = spec
        self.backend = backend
        self.resources = resources
        self._board = job_board()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._cancelled = False
        self._failure: str | None = None  # why the driver stopped the job (time limit)
        self._outcome: dict[str, Any] | None = None
        self._live_cache: dict[str, Any] = {}
        self._live_at = 0.0
        spec_json = json.dumps(attrs.asdict(spec))
        options = resources.options()
        options["name"] = f"mlops-job:{spec.function.qualname}"
        self.ref = (
            remote_run_job(backend.target.reuse_workers)
            .options(**options)
            .remote(spec_json, self._board)
        )
        self._thread = threading.Thread(
            target=self._watch, name=f"mlops-ray-job-{spec.id[:8]}", daemon=True
        )
        self._thread.start()

    # what the task reported so far
    def _live(self, max_age: float = 0.0) -> dict[str, Any]:
        now = time.monotonic()
        if max_age and now - self._live_at <= max_age:
            return self._live_cache
        try:
            live: dict[str, Any] = ray.get(self._board.get.remote(self.spec.id), timeout=30)
        except Exception:  # the board is gone (Ray shut down): nothing reported
            live = {}
        self._live_cache, self._live_at = live, now
        return live

    def _watch(self) -> None:
        timeout = self.resources.timeout
        started: float | None = None
        starting: float | None = None
        while True:
            try:
                ready, _ = ray.wait([self.ref], timeout=POLL_SECONDS)
            except Exception:  # Ray was shut down under the job: _finish records why
                break
            if ready or self._cancelled:
                break
            if timeout is not None:
                # The task stops itself at its time limit; kill it if it cannot (stuck in a blocking call).
                # Before its run starts (imports, opening the workspace) it gets the limit plus
                # the start-up allowance, counted from when its task started.
                now = time.monotonic()
                if started is None:
                    state = self._live().get("state")
                    if state == "RUNNING":
                        started = now
                    elif state == "STARTING" and starting is None:
                        starting = now
                grace = self.backend.target.cancel_grace + 1
                allowance = self.backend.target.start_allowance
                if started is not None and now - started > timeout + grace:
                    self._failure = time_limit_text(timeout)
                elif (
                    started is None
                    and starting is not None
                    and now - starting > timeout + allowance + grace
                ):
                    self._failure = (
                        f"the job did not start its run within {timeout + allowance:g} s of its Ray task "
                        f"starting (resources['timeout'] plus start_allowance={allowance:g} s for imports "
                        "and opening the workspace)"
                    )
                if self._failure:
                    with contextlib.suppress(Exception):
                        ray.cancel(self.ref, force=True)
                    break
        try:
            self._finish()
        finally:
            if not self._done.is_set():  # never leave waiters hanging
                self._outcome = self._outcome or {
                    "state": "FAILED",
                    "error": "the job's outcome was lost",
                }
                self._done.set()

    def _finish(self) -> None:
        """Read the outcome (waiting for a stopped task to go), end a run left open, release waiters."""
        try:
            outcome: dict[str, Any] = json.loads(ray.get(self.ref, timeout=KILL_WAIT_SECONDS))
        except ray.exceptions.GetTimeoutError:
            outcome = {"state": "FAILED", "error": "the Ray task did not stop"}
        except ray.exceptions.TaskCancelledError:
            outcome = {"state": "FAILED", "error": "the Ray task was cancelled"}
        except ray.exceptions.WorkerCrashedError as exc:
            outcome = {
                "state": "FAILED",
                "error": f"the Ray worker running the job died: {_first_line(exc)}",
            }
        except ray.exceptions.RayTaskError as exc:
            outcome = {"state": "FAILED", "error": f"the Ray task failed: {_first_line(exc)}"}
        except ray.exceptions.RayError as exc:  # OutOfMemoryError, ObjectLostError, …
            outcome = {"state": "FAILED", "error": f"{type(exc).__name__}: {_first_line(exc)}"}
        except Exception as exc:  # anything else still ends the job
            outcome = {"state": "FAILED", "error": f"{type(exc).__name__}: {exc}"}
        if "logs" not in outcome or "run_id" not in outcome:
            live = self._live()
            outcome.setdefault("logs", live.get("logs", ""))
            if live.get("run_id"):
                outcome.setdefault("run_id", live["run_id"])
        if self._failure:
            outcome["state"] = "FAILED"
            outcome["error"] = self._failure
        if outcome.get("state") != "SUCCEEDED" or self._cancelled:
            self._end_orphaned_run(outcome)
        with contextlib.suppress(Exception):
            self._board.forget.remote(self.spec.id)
        self._outcome = outcome
        self._done.set()

    def _end_orphaned_run(self, outcome: dict[str, Any]) -> None:
        """A killed task cannot end its run: end it here, KILLED when cancelled, else FAILED."""
        from mlops_sdk.compute.worker import end_orphaned_run

        if self._cancelled:
            status, error = "KILLED", "the job was cancelled (its Ray task was stopped)"
        else:
            status, error = "FAILED", str(outcome.get("error") or "the job's Ray task failed")
        try:
            run_id = end_orphaned_run(attrs.asdict(self.spec), outcome.get("run_id"), status, error)
        except Exception:  # the workspace is unreachable from here; the outcome still says why
            return
        if run_id and not outcome.get("run_id"):
            outcome["run_id"] = run_id

    def _stop_task(self) -> None:
        """Interrupt the task (KeyboardInterrupt: its run ends KILLED), then kill its worker if it lingers."""
        with contextlib.suppress(Exception):
            ray.cancel(self.ref, force=False)
        ready, _ = ray.wait([self.ref], timeout=self.backend.target.cancel_grace)
        if not ready:
            with contextlib.suppress(Exception):
                ray.cancel(self.ref, force=True)

    # JobHandle
    def state(self) -> JobState:
        if self._cancelled:
            return JobState.CANCELLED
        if self._done.is_set():
            assert self._outcome is not None
            return (
                JobState.SUCCEEDED if self._outcome.get("state") == "SUCCEEDED" else JobState.FAILED
            )
        return (
            JobState.RUNNING
            if self._live(max_age=POLL_SECONDS).get("state") == "RUNNING"
            else JobState.PENDING
        )

    def wait(self, timeout: float | None = None) -> JobState:
        self._done.wait(timeout)
        return self.state()

    def result(self) -> Any:
        state = self.wait()
        outcome = self._outcome or {}
        if state is JobState.SUCCEEDED:
            return outcome.get("result")
        if state is JobState.CANCELLED:
            raise JobError(f"job {self.spec.id} was cancelled")
        fn = self.spec.function
        where = fn.script or fn.module
        error = outcome.get("error") or "the task ended without a result; see job.logs()"
        raise JobError(f"job {self.spec.id} ({where}:{fn.qualname}) failed on Ray: {error}")

    def run_id(self) -> str | None:
        if self._outcome is not None:
            return self._outcome.get("run_id")
        return self._live().get("run_id")

    def logs(self) -> str:
        if self._outcome is not None:
            return str(self._outcome.get("logs", ""))
        return str(self._live().get("logs", ""))

    def cancel(self) -> None:
        with self._lock:
            if self._done.is_set() or self._cancelled:
                return
            self._cancelled = True
        self._stop_task()
        self._done.wait(KILL_WAIT_SECONDS + self.backend.target.cancel_grace)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


class RayCompute(ComputeBackend):
    """Runs each job as a Ray task with the job's resources (cpus, gpus, memory)."""

    def __init__(self, uri: str = "ray://local", *, root: Path | str = ".", **_: Any) -> None:
        self.uri = uri
        self.root = Path(root)
        self.target = parse_uri(uri)
        self._nodes: list[dict[str, float]] = []
        self._nodes_at = 0.0

    def connect(self) -> None:
        """Connect to Ray now (``submit`` does it on first use)."""
        connect(self.target)

    def node_resources(self) -> list[dict[str, float]]:
        """Total resources of each alive node (cached for a few seconds)."""
        now = time.monotonic()
        if not self._nodes or now - self._nodes_at > NODES_CACHE_SECONDS:
            nodes = ray.nodes()  # type: ignore[no-untyped-call]
            self._nodes = [dict(node.get("Resources") or {}) for node in nodes if node.get("Alive")]
            self._nodes_at = now
        return self._nodes

    def check_resources(self, resources: Mapping[str, Any]) -> None:
        """Refuse what no node of the cluster can provide (``ws.submit`` and sweeps call it before recording anything).

        Ray would leave such a task pending forever (it waits for a node that
        fits, which only an autoscaler could add).
        """
        checked = task_resources(resources)
        if not self.target.check_resources:
            return
        self.connect()
        need = checked.demand()
        nodes = self.node_resources()
        if any(all(node.get(k, 0.0) >= v for k, v in need.items()) for node in nodes):
            return
        largest = {k: max((node.get(k, 0.0) for node in nodes), default=0.0) for k in need}
        raise InvalidValue(
            f"the job asks for {_fmt(need)} but no node of the Ray cluster "
            f"({self.uri}) has that much (the largest offer {_fmt(largest)}); ask for less, or add nodes "
            "(for an autoscaling cluster, add ?check_resources=false to the URI)"
        )

    def submit(self, spec: JobSpec) -> RayJob:
        self.check_resources(spec.resources)
        resources = task_resources(spec.resources)
        self.connect()
        try:
            return RayJob(self, spec, resources)
        except Exception as exc:
            raise BackendError(
                f"ray compute ({self.uri}) could not submit job {spec.id}: {exc}"
            ) from exc

    def shutdown(self) -> None:
        """Disconnect from Ray (and stop a ``ray://local`` instance started by this process)."""
        disconnect()


def _fmt(resources: Mapping[str, float]) -> str:
    parts = []
    for key, value in resources.items():
        if key == "memory":
            parts.append(f"memory {value / 1024**3:.2f} GiB")
        else:
            parts.append(f"{key} {value:g}")
    return ", ".join(parts) or "nothing"
