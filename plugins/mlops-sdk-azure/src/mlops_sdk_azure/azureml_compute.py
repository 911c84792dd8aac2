"""Compute backend ``azureml://SUBSCRIPTION/RESOURCE_GROUP/WORKSPACE``: each job is an Azure ML command job.

Query options (none secret): ``compute`` (a compute cluster name; leave it out
for serverless compute), ``environment`` (``azureml:NAME:VERSION`` or
``azureml:NAME@latest``) or ``image`` (a Docker image; Azure ML registers it
as an anonymous environment), ``instance_type`` (``Standard_DS3_v2``),
``instance_count`` (1), ``datastore`` (where job outputs go,
``workspaceblobstore``), ``experiment`` (the Azure ML experiment name; the
job spec's experiment by default) and ``poll_interval`` (seconds between the
first status polls, 5; it backs off to 60).

The job's environment must have ``mlops-sdk`` (and the module that defines the
job function) installed, and must reach the workspace's tracking and storage
(a tracking server and ``az://`` storage, say): the job runs in Azure. Its
command writes the job spec, passed in the ``MLOPS_JOB_SPEC`` environment
variable, into the job's output folder and runs
``python -m mlops_sdk.compute.worker`` on it, the runner every backend shares
(:func:`mlops_sdk.compute.worker.execute_spec`), so the run, its params,
metrics and artifacts land in the mlops workspace. The worker's
``state.json`` (run id, result or error) and ``log.txt`` stay in that output
folder (``azureml://datastores/DATASTORE/paths/mlops-jobs/JOB/``), where
:meth:`AzureMLJob.result` and :meth:`AzureMLJob.logs` read them with the same
credential (it needs read access to the datastore's blobs).

Resources: ``timeout`` becomes the job's time limit; ``cpus``, ``gpus`` and
``memory`` are decided by the VM size (``instance_type`` or the cluster's)
and are recorded as tags only.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
from mlops_sdk.compute.base import ComputeBackend, JobHandle, JobSpec, JobState
from mlops_sdk.errors import BackendError, ConfigError, InvalidValue, JobError

from mlops_sdk_azure import _azureml as az

WHAT = "azureml compute"
OPTIONS = frozenset(
    {"compute", "environment", "image", "instance_type", "instance_count", "datastore", "experiment", "poll_interval"}
)
OUTPUT = "mlops"
SPEC_ENV = "MLOPS_JOB_SPEC"
MAX_POLL_SECONDS = 60.0
RESOURCE_KEYS = ("cpus", "gpus", "memory", "timeout")

#: Azure ML job status → our state (unknown statuses count as PENDING until they end)
STATES: Mapping[str, JobState] = {
    "NotStarted": JobState.PENDING,
    "Queued": JobState.PENDING,
    "Preparing": JobState.PENDING,
    "Provisioning": JobState.PENDING,
    "Starting": JobState.PENDING,
    "Running": JobState.RUNNING,
    "Finalizing": JobState.RUNNING,
    "Completed": JobState.SUCCEEDED,
    "Failed": JobState.FAILED,
    "NotResponding": JobState.FAILED,
    "Paused": JobState.PENDING,
    "Unknown": JobState.PENDING,
    "CancelRequested": JobState.CANCELLED,
    "Canceled": JobState.CANCELLED,
}

# The job's command: the spec goes in through the environment (no upload needed), the worker's
# output is kept next to its state.json and echoed to the job's own log (std_log.txt in Studio).
COMMAND = (
    "printenv " + SPEC_ENV + " > ${{outputs." + OUTPUT + "}}/spec.json && "
    "python -m mlops_sdk.compute.worker ${{outputs." + OUTPUT + "}} "
    "> ${{outputs." + OUTPUT + "}}/log.txt 2>&1; rc=$?; cat ${{outputs." + OUTPUT + "}}/log.txt; exit $rc"
)


def map_state(status: str | None) -> JobState:
    """An Azure ML job status (``Queued``, ``Running``, ``Completed``…) as a :class:`JobState`."""
    return STATES.get(status or "", JobState.PENDING)


@attrs.frozen
class JobOptions:
    """The job settings an ``azureml://`` compute URI gives."""

    compute: str | None
    environment: str | None
    image: str | None
    instance_type: str | None
    instance_count: int
    datastore: str
    experiment: str | None
    poll_interval: float


def job_options(target: az.Target) -> JobOptions:
    opts = target.options
    where = f"{WHAT} {target.uri}"
    try:
        if "environment" in opts and "image" in opts:
            raise InvalidValue("give environment or image, not both")
        if "environment" not in opts and "image" not in opts:
            raise InvalidValue(
                "the job needs an environment with mlops-sdk installed: add ?environment=azureml:NAME:VERSION "
                "or ?image=REGISTRY/IMAGE:TAG"
            )
        try:
            poll = float(opts.get("poll_interval", "5"))
        except ValueError:
            raise InvalidValue(f"poll_interval must be seconds, got {opts['poll_interval']!r}") from None
        if not math.isfinite(poll) or not 0 <= poll <= 3600:
            raise InvalidValue(f"poll_interval must be seconds from 0 to 3600, got {opts['poll_interval']!r}")
        return JobOptions(
            compute=az.compute_name("compute", opts["compute"]) if "compute" in opts else None,
            environment=az.environment_ref("environment", opts["environment"]) if "environment" in opts else None,
            image=az.image_ref("image", opts["image"]) if "image" in opts else None,
            instance_type=az.instance_type("instance_type", opts["instance_type"]) if "instance_type" in opts else None,
            instance_count=az.count("instance_count", opts.get("instance_count", "1"), 1, 1000),
            datastore=az.asset_name("datastore", opts.get("datastore", az.DEFAULT_DATASTORE)),
            experiment=az.asset_name("experiment", opts["experiment"]) if "experiment" in opts else None,
            poll_interval=poll,
        )
    except InvalidValue as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _remote_workspace(spec: JobSpec, where: str) -> dict[str, str]:
    """The workspace as the job opens it: the same tracking and storage, a fresh local root."""
    ws = dict(spec.workspace)
    for key in ("tracking", "storage"):
        value = str(ws.get(key, ""))
        scheme = value.partition("://")[0].lower() if "://" in value else ""
        if scheme in ("", "file", "sqlite"):
            raise ConfigError(
                f"{where}: the job runs in Azure and cannot reach this workspace's {key} {value!r} (a local "
                "path); use a tracking server and az:// storage for jobs on Azure ML"
            )
        if urlsplit(value).password:
            raise ConfigError(
                f"{where}: the workspace's {key} URI holds a password, which would be visible in the Azure ML "
                "job definition; give the job its credentials another way (a managed identity, or PGPASSWORD "
                "set in the job's environment) and use a URI without the password"
            )
    ws["root"] = "."
    return ws


def _experiment_name(text: str) -> str:
    """The nearest Azure ML experiment name (letters, digits, '_', '-', '.')."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-._")[:255]
    return name or "mlops"


class AzureMLJob(JobHandle):
    """A submitted Azure ML command job."""

    def __init__(self, backend: AzureMLCompute, spec: JobSpec, name: str) -> None:
        self.backend = backend
        self.spec = spec
        self.name = name
        self._final: JobState | None = None
        self._outcome: dict[str, Any] | None = None
        self._studio: str | None = None
        self._error: str | None = None

    @property
    def _where(self) -> str:
        return f"{WHAT} {self.backend.target.uri} job {self.name}"

    def _job(self) -> Any:
        client = self.backend.client()
        return az.call(self._where, "read the job", client.jobs.get, self.name)

    def state(self) -> JobState:
        if self._final is not None:
            return self._final
        job = self._job()
        state = map_state(getattr(job, "status", None))
        services = getattr(job, "services", None) or {}
        studio = services.get("Studio") if isinstance(services, Mapping) else None
        self._studio = getattr(studio, "endpoint", None) or self._studio
        if state.is_terminal:
            self._final = state
        return state

    def wait(self, timeout: float | None = None) -> JobState:
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = self.backend.options.poll_interval
        while True:
            state = self.state()
            if state.is_terminal:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                return state
            pause = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
            time.sleep(pause)
            interval = min(MAX_POLL_SECONDS, max(interval * 1.5, interval + 0.5) if interval else 0.0)

    def _blob(self, name: str) -> bytes | None:
        from azure.core.exceptions import ResourceNotFoundError

        container = self.backend.container()
        blob = container.get_blob_client(f"{self.backend.output_prefix(self.name)}{name}")
        try:
            return bytes(blob.download_blob().readall())
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            from azure.core.exceptions import AzureError

            if isinstance(exc, AzureError):
                az.raise_translated(exc, self._where, f"read the job's {name}")
            raise

    def _read_outcome(self) -> dict[str, Any]:
        if self._outcome is not None:
            return self._outcome
        data = self._blob("state.json")
        outcome: dict[str, Any] = {}
        if data:
            try:
                outcome = json.loads(data)
            except ValueError:
                outcome = {}
        if self._final is not None:
            self._outcome = outcome
        return outcome

    def result(self) -> Any:
        state = self.wait()
        outcome = self._read_outcome()
        if state is JobState.SUCCEEDED and outcome.get("state") == "SUCCEEDED":
            return outcome.get("result")
        fn = self.spec.function
        if state is JobState.CANCELLED:
            raise JobError(f"job {self.spec.id} ({self.name} in {self.backend.target.uri}) was cancelled")
        if state is JobState.SUCCEEDED:
            error = "the Azure ML job completed but wrote no result (state.json) to its output"
        else:
            error = str(outcome.get("error") or self._job_error() or "see job.logs()")
        raise JobError(
            f"job {self.spec.id} ({fn.module}:{fn.qualname}) failed on Azure ML ({self.name} in "
            f"{self.backend.target.uri}): {error}"
            + (f"; studio: {self._studio}" if self._studio else "")
        )

    def _job_error(self) -> str | None:
        try:
            job = self._job()
        except BackendError:
            return None
        error = (getattr(job, "properties", None) or {}).get("error") if hasattr(job, "properties") else None
        return str(error) if error else None

    def run_id(self) -> str | None:
        run = self._read_outcome().get("run_id")
        return str(run) if run else None

    def logs(self) -> str:
        """The worker's output (``log.txt`` in the job's output folder; complete once the job ends).

        Azure ML Studio streams the same text live as the job's ``std_log.txt``.
        """
        data = self._blob("log.txt")
        if data is not None:
            return data.decode("utf-8", "replace")
        self.state()
        where = f" (Azure ML Studio: {self._studio})" if self._studio else ""
        return f"[no log yet: job {self.name} has not written log.txt to its output{where}]\n"

    def cancel(self) -> None:
        if self._final is not None:
            return
        client = self.backend.client()
        poller = az.call(self._where, "cancel the job", client.jobs.begin_cancel, self.name)
        az.call(self._where, "cancel the job", poller.result)
        self._final = JobState.CANCELLED
        run_id = self.run_id()
        if run_id is None:  # the worker never started a run: nothing to end
            return
        from mlops_sdk.compute.worker import end_orphaned_run

        with contextlib.suppress(Exception):  # the workspace may be unreachable from here
            end_orphaned_run(attrs.asdict(self.spec), run_id, "KILLED", "the Azure ML job was cancelled")


class AzureMLCompute(ComputeBackend):
    """Runs each job as an Azure ML command job in one workspace.

    ``credential`` defaults to ``DefaultAzureCredential()``; ``client_kwargs``
    go to ``MLClient`` and its azure-core pipelines (a ``transport``, retry
    settings). Nothing is sent until the first :meth:`submit`.
    """

    def __init__(self, uri: str, *, root: Path | str = ".", credential: Any = None,
                 client_kwargs: Mapping[str, Any] | None = None, **_: Any) -> None:
        self.uri = uri
        self.root = Path(root)
        self.target = az.parse_uri(uri, WHAT, OPTIONS)
        self.options = job_options(self.target)
        self._credential = credential
        self._client_kwargs = dict(client_kwargs or {})
        self._client: Any = None
        self._container: Any = None

    def client(self) -> Any:
        """The ``MLClient`` (made on first use)."""
        if self._client is None:
            self._client = az.ml_client(self.target, self._credential, self._client_kwargs)
        return self._client

    def container(self) -> Any:
        """The blob container of the output datastore."""
        if self._container is None:
            self._container = az.datastore_container(self.client(), f"{WHAT} {self.target.uri}", self.options.datastore)
        return self._container

    def output_prefix(self, job: str) -> str:
        return f"mlops-jobs/{job}/"

    def check_resources(self, resources: Mapping[str, Any]) -> None:
        """Refuse resource keys this backend does not know (before anything is recorded)."""
        unknown = sorted(str(k) for k in resources if k not in RESOURCE_KEYS)
        if unknown:
            raise InvalidValue(
                f"{WHAT} does not know resource(s) {', '.join(map(repr, unknown))}; use {', '.join(RESOURCE_KEYS)}"
            )
        timeout = resources.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise InvalidValue(f"{WHAT}: resources['timeout'] must be a positive number of seconds, got {timeout!r}")

    def job_name(self, spec: JobSpec) -> str:
        return az.job_name("job name", f"mlops-{spec.id}".replace(".", "-"))

    def build_job(self, spec: JobSpec) -> Any:
        """The ``azure.ai.ml`` command job for ``spec`` (no request is sent)."""
        ml = az.sdk()
        Output, command, Environment = ml.Output, ml.command, ml.entities.Environment

        where = f"{WHAT} {self.target.uri}"
        self.check_resources(spec.resources)
        if spec.function.script:
            raise InvalidValue(
                f"{where}: job function {spec.function.qualname!r} is defined in a script "
                f"({spec.function.script}); an Azure ML job imports it by module, so move it into a module "
                "installed in the job's environment"
            )
        name = self.job_name(spec)
        opts = self.options
        payload = {**attrs.asdict(spec), "workspace": _remote_workspace(spec, where), "sys_path": [], "cwd": "."}
        environment: Any = opts.environment if opts.environment else Environment(image=opts.image)
        tags = {"mlops.job_id": spec.id, "mlops.function": f"{spec.function.module}:{spec.function.qualname}"}
        for key in ("cpus", "gpus", "memory"):
            if spec.resources.get(key) is not None:
                tags[f"mlops.resources.{key}"] = str(spec.resources[key])
        timeout = spec.resources.get("timeout")
        return command(
            name=name,
            display_name=spec.run_name,
            experiment_name=opts.experiment or _experiment_name(spec.experiment),
            description=f"mlops-sdk job {spec.id}: {spec.function.module}:{spec.function.qualname}",
            tags=tags,
            command=COMMAND,
            environment=environment,
            environment_variables={SPEC_ENV: json.dumps(payload, sort_keys=True), "PYTHONUNBUFFERED": "1"},
            compute=opts.compute,
            outputs={
                OUTPUT: Output(
                    type="uri_folder", mode="rw_mount",
                    path=f"azureml://datastores/{opts.datastore}/paths/{self.output_prefix(name)}",
                )
            },
            instance_type=opts.instance_type,
            instance_count=opts.instance_count,
            timeout=math.ceil(timeout) if timeout is not None else None,
        )

    def submit(self, spec: JobSpec) -> AzureMLJob:
        job = self.build_job(spec)
        client = self.client()
        where = f"{WHAT} {self.target.uri}"
        created = az.call(where, f"create job {job.name}", client.jobs.create_or_update, job)
        return AzureMLJob(self, spec, str(getattr(created, "name", None) or job.name))


__all__ = ["COMMAND", "STATES", "AzureMLCompute", "AzureMLJob", "map_state"]
