"""Compute backend ``sagemaker://``: each job is one SageMaker training job.

``sagemaker://us-east-1?role=ARN&bucket=s3://BUCKET/PREFIX&image=IMAGE&instance_type=ml.m5.large``

:meth:`SageMakerCompute.submit` uploads the job spec (JSON, through the
``s3://`` storage of mlops-sdk-s3) to ``BUCKET/PREFIX/sagemaker/jobs/JOB/input/spec.json``
and creates a training job named ``mlops-<job id>``:

* ``AlgorithmSpecification``: the image (``resources["image"]`` or the URI's
  ``image``; it must have mlops-sdk, mlops-sdk-aws and the job's code
  installed) with ``ContainerEntrypoint = python -m mlops_sdk_aws.entry``,
  which runs the spec through :func:`mlops_sdk.compute.worker.execute_spec`
  (the job body every backend shares) and writes the JSON result back to
  ``.../JOB/result.json``;
* ``ResourceConfig``: ``instance_type`` / ``instance_count`` / ``volume_size``
  (resources, else the URI's options; ``ml.m5.large`` x 1 by default);
* ``StoppingCondition.MaxRuntimeInSeconds``: ``resources["max_runtime"]`` or
  ``resources["timeout"]`` (seconds), else the URI's ``max_runtime`` (1 day);
* ``InputDataConfig``: channel ``mlops`` (the spec) plus one channel per entry
  of ``resources["inputs"]`` (``{"train": "s3://bucket/data/"}``), mounted by
  SageMaker under ``/opt/ml/input/data/CHANNEL``;
* ``OutputDataConfig.S3OutputPath``: ``resources["output"]`` or ``.../JOB/output``;
* ``HyperParameters``: each job param as JSON text (SageMaker wants strings;
  a tuning job may override them), plus ``mlops.spec``, ``mlops.storage``
  and ``mlops.job`` telling the entry point where the spec lives.

``ws.submit(..., resources=...)`` accepts SageMaker's own keys (``image``,
``instance_type``, ``inputs``…) besides the core ones, because this backend
lists them in :attr:`SageMakerCompute.resource_keys`. ``cpus``/``gpus``/``memory``
do not pick an instance type and are ignored (choose ``instance_type``).

The job's run is logged into the workspace named by the spec, so the training
container must reach the workspace's tracking and storage (e.g. PostgreSQL and
``s3://``; a local SQLite file is not reachable from SageMaker).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from mlops_sdk.compute.base import ComputeBackend, JobHandle, JobSpec, JobState
from mlops_sdk.errors import BackendError, InvalidValue, JobError, ObjectNotFound

from mlops_sdk_aws.common import (
    MANAGED_BY,
    TAG_MANAGED,
    SageMakerBackend,
    Target,
    check_image,
    check_instance_type,
    is_missing,
    translate,
    validate_name,
)

ENTRYPOINT = ("python", "-m", "mlops_sdk_aws.entry")
SPEC_CHANNEL = "mlops"
HP_SPEC, HP_STORAGE, HP_JOB = "mlops.spec", "mlops.storage", "mlops.job"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
RESOURCE_KEYS = frozenset(
    {"image", "instance_type", "instance_count", "volume_size", "max_runtime", "timeout", "inputs", "output",
     "cpus", "gpus", "memory"}
)
STATES = {
    "InProgress": JobState.RUNNING,
    "Completed": JobState.SUCCEEDED,
    "Failed": JobState.FAILED,
    "Stopping": JobState.CANCELLED,
    "Stopped": JobState.CANCELLED,
}
_CHANNEL = re.compile(r"[A-Za-z0-9.\-_]{1,64}")
_S3 = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")
MAX_HYPERPARAMETER = 2500  # SageMaker's limit on one hyperparameter value


def job_name(spec_id: str) -> str:
    """``mlops-<id>``, the training job's name (validated: SageMaker names are 1-63 of ``[A-Za-z0-9-]``)."""
    return validate_name("training job name", f"mlops-{spec_id}")


def job_key(name: str, leaf: str) -> str:
    """Storage key of a job's file (``spec``, ``result``, ``state``) under the bucket prefix."""
    return f"sagemaker/jobs/{name}/{leaf}"


def map_state(status: str) -> JobState:
    """SageMaker's ``TrainingJobStatus`` → :class:`JobState` (unknown statuses count as PENDING)."""
    return STATES.get(status, JobState.PENDING)


def _int(key: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or not low <= value <= high:
        raise InvalidValue(f"sagemaker compute: resources[{key!r}] must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def hyperparameters(params: Mapping[str, Any], extra: Mapping[str, str]) -> dict[str, str]:
    """The job's params as SageMaker hyperparameters: each value as JSON text, plus ``extra``."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not 0 < len(key) <= 256 or key.startswith("mlops."):
            raise InvalidValue(f"sagemaker compute: job param name {key!r} cannot be a hyperparameter (1-256 characters, not mlops.*)")
        text = json.dumps(value, allow_nan=False)
        if len(text) > MAX_HYPERPARAMETER:
            raise InvalidValue(
                f"sagemaker compute: job param {key!r} is {len(text)} characters as JSON; SageMaker takes at most "
                f"{MAX_HYPERPARAMETER} per hyperparameter (pass large data as an input channel)"
            )
        out[key] = text
    out.update(extra)
    if len(out) > 100:
        raise InvalidValue(f"sagemaker compute: {len(out)} hyperparameters; SageMaker takes at most 100")
    return out


@attrs.frozen
class TrainingRequest:
    """A job's resources resolved against the URI's defaults."""

    image: str
    instance_type: str
    instance_count: int
    volume_size: int
    max_runtime: int
    inputs: Mapping[str, str]
    output: str | None


def resolve_resources(target: Target, resources: Mapping[str, Any]) -> TrainingRequest:
    """Check ``JobSpec.resources`` and fill in the URI's defaults; ``InvalidValue`` names the bad key."""
    unknown = sorted(str(k) for k in resources if k not in RESOURCE_KEYS)
    if unknown:
        raise InvalidValue(
            f"sagemaker compute: unknown resource(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(RESOURCE_KEYS))}"
        )
    image = resources.get("image") or target.image
    if not image:
        target.require("sagemaker compute", "image")
    check_image("sagemaker compute: image", image)
    instance_type = check_instance_type(
        "sagemaker compute: resources['instance_type']", resources.get("instance_type") or target.instance_type
    )
    runtime = resources.get("max_runtime", resources.get("timeout"))
    inputs = resources.get("inputs") or {}
    if not isinstance(inputs, Mapping):
        raise InvalidValue(f"sagemaker compute: resources['inputs'] must map channel names to s3:// URLs, got {inputs!r}")
    for channel, url in inputs.items():
        if not isinstance(channel, str) or not _CHANNEL.fullmatch(channel) or channel == SPEC_CHANNEL:
            raise InvalidValue(
                f"sagemaker compute: input channel name {channel!r} is not valid (1-64 of letters, digits, '.', '-', "
                f"'_'; {SPEC_CHANNEL!r} is reserved)"
            )
        if not isinstance(url, str) or not _S3.fullmatch(url):
            raise InvalidValue(f"sagemaker compute: input channel {channel!r} must be an s3:// URL, got {url!r}")
    output = resources.get("output")
    if output is not None and (not isinstance(output, str) or not _S3.fullmatch(output)):
        raise InvalidValue(f"sagemaker compute: resources['output'] must be an s3:// URL, got {output!r}")
    return TrainingRequest(
        image=str(image),
        instance_type=instance_type,
        instance_count=_int("instance_count", resources.get("instance_count", target.instance_count), 1, 1000),
        volume_size=_int("volume_size", resources.get("volume_size", target.volume_size), 1, 16_384),
        max_runtime=_int("max_runtime", runtime if runtime is not None else target.max_runtime, 1, 28 * 86_400),
        inputs=dict(inputs),
        output=output,
    )


class SageMakerJob(JobHandle):
    """A submitted training job; every method asks SageMaker (or S3), so any process can follow the job."""

    def __init__(self, backend: SageMakerCompute, spec: JobSpec, name: str) -> None:
        self.backend = backend
        self.spec = spec
        self.name = name

    def describe(self) -> dict[str, Any]:
        """SageMaker's ``DescribeTrainingJob`` answer."""
        return dict(self.backend._call(f"describe training job {self.name}", "describe_training_job", TrainingJobName=self.name))

    def state(self) -> JobState:
        return map_state(str(self.describe().get("TrainingJobStatus", "")))

    def wait(self, timeout: float | None = None) -> JobState:
        """Poll with backoff (from 1 s up to the URI's ``poll``) until the job ends or ``timeout`` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(1.0, self.backend.target.poll)
        while True:
            description = self.describe()
            status = str(description.get("TrainingJobStatus", ""))
            state = map_state(status)
            # "Stopping" is CANCELLED for the caller, but the job only ends at "Stopped"
            if state.is_terminal and status != "Stopping":
                return state
            if deadline is not None and time.monotonic() >= deadline:
                return state
            pause = delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic()))
            time.sleep(pause)
            delay = min(delay * 2, self.backend.target.poll)

    def _read_json(self, leaf: str) -> dict[str, Any] | None:
        try:
            data = self.backend.storage.get_bytes(job_key(self.name, leaf))
        except ObjectNotFound:
            return None
        value = json.loads(data)
        return value if isinstance(value, dict) else None

    def result(self) -> Any:
        state = self.wait()
        fn = self.spec.function
        where = f"{fn.script or fn.module}:{fn.qualname}"
        if state is JobState.CANCELLED:
            raise JobError(f"job {self.spec.id} ({where}) was stopped (SageMaker training job {self.name})")
        outcome = self._read_json("result.json")
        if state is JobState.FAILED:
            reason = self.describe().get("FailureReason") or "no reason given"
            if outcome and outcome.get("error"):
                reason = f"{reason} ({outcome['error']})" if reason != outcome["error"] else reason
            raise JobError(f"job {self.spec.id} ({where}) failed on SageMaker (training job {self.name}): {reason}")
        if outcome is None:
            raise JobError(
                f"job {self.spec.id} ({where}): SageMaker training job {self.name} completed but wrote no result to "
                f"{self.backend.target.s3_url(job_key(self.name, 'result.json'))}; does its image run "
                f"`{' '.join(ENTRYPOINT)}`? See job.logs()"
            )
        if outcome.get("state") != "SUCCEEDED":
            raise JobError(f"job {self.spec.id} ({where}) failed on SageMaker: {outcome.get('error') or 'unknown error'}")
        return outcome.get("result")

    def run_id(self) -> str | None:
        for leaf in ("result.json", "state.json"):
            outcome = self._read_json(leaf)
            if outcome and outcome.get("run_id"):
                return str(outcome["run_id"])
        return None

    def logs(self) -> str:
        """The job's CloudWatch Logs (group ``/aws/sagemaker/TrainingJobs``, streams ``JOB/...``), oldest first."""
        logs = self.backend._client("logs")
        try:
            streams: list[str] = []
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamNamePrefix": f"{self.name}/"}
                if token:
                    kwargs["nextToken"] = token
                page = logs.describe_log_streams(**kwargs)
                streams += [s["logStreamName"] for s in page.get("logStreams", [])]
                token = page.get("nextToken")
                if not token:
                    break
            lines: list[str] = []
            for stream in sorted(streams):
                forward: str | None = None
                while True:
                    kwargs = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
                    if forward:
                        kwargs["nextToken"] = forward
                    page = logs.get_log_events(**kwargs)
                    lines += [e["message"].rstrip("\n") for e in page.get("events", [])]
                    if not page.get("events") or page.get("nextForwardToken") in (None, forward):
                        break
                    forward = page.get("nextForwardToken")
        except Exception as exc:
            if _code(exc) == "ResourceNotFoundException":  # no log group yet: nothing logged
                return ""
            raise translate(exc, self.backend.who, f"read the logs of training job {self.name}") from exc
        return "\n".join(lines) + ("\n" if lines else "")

    def cancel(self) -> None:
        """``StopTrainingJob``; a job that already ended is left as it is."""
        if self.state().is_terminal:
            return
        try:
            self.backend._client("sagemaker").stop_training_job(TrainingJobName=self.name)
        except Exception as exc:
            with contextlib.suppress(Exception):
                if self.state().is_terminal:
                    return
            raise translate(exc, self.backend.who, f"stop training job {self.name}") from exc


def _code(exc: BaseException) -> str:
    from mlops_sdk_aws.common import error_code

    return error_code(exc)


class SageMakerCompute(SageMakerBackend, ComputeBackend):
    """Runs each job as a SageMaker training job (see the module doc for the request it sends)."""

    #: the resource keys ``ws.submit`` accepts for this backend (besides the core ones)
    resource_keys = RESOURCE_KEYS

    kind = "compute"

    def __init__(self, uri: str, *, root: Path | str = ".", **_: Any) -> None:
        super().__init__(uri, root=root)

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client("sagemaker"), method)(**kwargs)
        except Exception as exc:
            if is_missing(exc):
                raise JobError(f"{self.who}: {what}: no such training job") from exc
            raise translate(exc, self.who, what) from exc

    def check_resources(self, resources: Mapping[str, Any]) -> None:
        """Refuse bad resources before anything is recorded (``ws.submit`` calls it)."""
        self.target.require("sagemaker compute", "role", "bucket")
        resolve_resources(self.target, resources)

    def training_request(self, spec: JobSpec, name: str) -> dict[str, Any]:
        """The ``CreateTrainingJob`` request for ``spec`` (no AWS call)."""
        self.target.require("sagemaker compute", "role", "bucket")
        req = resolve_resources(self.target, spec.resources)
        target = self.target
        channels = [
            {
                "ChannelName": SPEC_CHANNEL,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": target.s3_url(job_key(name, "input/")),
                                                "S3DataDistributionType": "FullyReplicated"}},
                "ContentType": "application/json",
                "InputMode": "File",
            }
        ]
        for channel, url in req.inputs.items():
            channels.append({
                "ChannelName": channel,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": url,
                                                "S3DataDistributionType": "FullyReplicated"}},
                "InputMode": "File",
            })
        extra = {
            HP_SPEC: target.s3_url(job_key(name, "input/spec.json")),
            HP_STORAGE: str(target.bucket),
            HP_JOB: name,
        }
        return {
            "TrainingJobName": name,
            "RoleArn": target.role,
            "AlgorithmSpecification": {
                "TrainingImage": req.image,
                "TrainingInputMode": "File",
                "ContainerEntrypoint": list(ENTRYPOINT),
            },
            "HyperParameters": hyperparameters(spec.params, extra),
            "InputDataConfig": channels,
            "OutputDataConfig": {"S3OutputPath": req.output or target.s3_url(job_key(name, "output"))},
            "ResourceConfig": {
                "InstanceType": req.instance_type,
                "InstanceCount": req.instance_count,
                "VolumeSizeInGB": req.volume_size,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": req.max_runtime},
            "Environment": {"PYTHONUNBUFFERED": "1"},
            "Tags": [
                {"Key": TAG_MANAGED, "Value": MANAGED_BY},
                {"Key": "mlops:job-id", "Value": spec.id},
                {"Key": "mlops:experiment", "Value": spec.experiment[:256]},
            ],
        }

    def submit(self, spec: JobSpec) -> SageMakerJob:
        name = job_name(spec.id)
        request = self.training_request(spec, name)
        self.storage.put_bytes(job_key(name, "input/spec.json"), json.dumps(attrs.asdict(spec), default=list).encode())
        try:
            self._client("sagemaker").create_training_job(**request)
        except Exception as exc:
            with contextlib.suppress(Exception):
                self.storage.delete(job_key(name, "input/spec.json"))
            if isinstance(exc, BackendError):
                raise
            raise translate(exc, self.who, f"create training job {name}") from exc
        return SageMakerJob(self, spec, name)

    def job(self, spec: JobSpec) -> SageMakerJob:
        """The handle of a job submitted earlier (from any process)."""
        return SageMakerJob(self, spec, job_name(spec.id))


__all__ = [
    "SageMakerCompute",
    "SageMakerJob",
    "TrainingRequest",
    "hyperparameters",
    "job_key",
    "job_name",
    "map_state",
    "resolve_resources",
]
