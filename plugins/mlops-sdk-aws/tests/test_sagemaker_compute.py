"""SageMaker compute against moto in server mode: the CreateTrainingJob request, states, logs, stop, and the
container entry point run for real in a subprocess with a SageMaker-style folder layout."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aws_jobs
import mlops_sdk
import pytest
from aws_testutil import IMAGE, ROLE, aws
from mlops_sdk.compute.base import JobState
from mlops_sdk.errors import ConfigError, InvalidValue, JobError
from mlops_sdk.job import submit
from mlops_sdk.plugins import create_backend

from mlops_sdk_aws.compute import LOG_GROUP, SageMakerCompute, SageMakerJob
from mlops_sdk_aws.moto_server import REASON_TAG, STATUS_TAG


@pytest.fixture
def ws(tmp_path: Path) -> Any:
    workspace = mlops_sdk.Workspace.open(tmp_path / "ws")
    yield workspace
    workspace.close()


def _submit(ws: Any, target: str, fn: Any, params: dict[str, Any], **resources: Any) -> tuple[Any, SageMakerJob]:
    """Submit through the core's ``ws.submit`` path: SageMaker's resource keys are accepted for this backend."""
    backend = create_backend("compute", target, root=ws.root)
    assert isinstance(backend, SageMakerCompute)
    job = submit(ws, fn, params, resources, experiment="sm", name=None, compute=backend)
    return job, job.handle


def _tag(handle: SageMakerJob, **tags: str) -> None:
    arn = handle.describe()["TrainingJobArn"]
    aws("sagemaker").add_tags(ResourceArn=arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def test_submit_sends_the_training_job_request(ws: Any, target: str, bucket: str) -> None:
    _, handle = _submit(
        ws, target, aws_jobs.add, {"a": 1.5, "b": [1, "x"]},
        instance_type="ml.c5.xlarge", instance_count=2, max_runtime=3600,
        inputs={"train": f"{bucket}/data/train/", "test": f"{bucket}/data/test/"},
    )
    job = aws("sagemaker").describe_training_job(TrainingJobName=handle.name)
    assert job["TrainingJobName"] == handle.name == f"mlops-{handle.spec.id}"
    assert job["RoleArn"] == ROLE
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert job["ResourceConfig"]["InstanceType"] == "ml.c5.xlarge"
    assert job["ResourceConfig"]["InstanceCount"] == 2
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 3600
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert channels == {
        "mlops": f"{bucket}/sagemaker/jobs/{handle.name}/input/",
        "train": f"{bucket}/data/train/",
        "test": f"{bucket}/data/test/",
    }
    assert job["OutputDataConfig"]["S3OutputPath"] == f"{bucket}/sagemaker/jobs/{handle.name}/output"
    hp = job["HyperParameters"]
    assert json.loads(hp["a"]) == 1.5 and json.loads(hp["b"]) == [1, "x"]
    assert hp["mlops.spec"] == f"{bucket}/sagemaker/jobs/{handle.name}/input/spec.json"
    assert hp["mlops.storage"] == bucket and hp["mlops.job"] == handle.name
    # the spec is in S3 where the channel points
    parts = urlsplit(hp["mlops.spec"])
    body = aws("s3").get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))["Body"].read()
    assert json.loads(body)["function"] == {"module": "aws_jobs", "qualname": "add", "script": None}


def test_uri_defaults_fill_the_request(ws: Any, target: str) -> None:
    job, handle = _submit(ws, target, aws_jobs.add, {"a": 1, "b": 2})
    described = handle.describe()
    assert described["ResourceConfig"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}
    assert described["StoppingCondition"]["MaxRuntimeInSeconds"] == 86_400
    assert job.id == handle.spec.id


def test_states_as_sagemaker_reports_them(ws: Any, target: str) -> None:
    _, handle = _submit(ws, target, aws_jobs.add, {"a": 1, "b": 2}, instance_type="ml.m5.large")
    # moto completes a training job at once (it runs no container)
    assert handle.state() is JobState.SUCCEEDED
    with pytest.raises(JobError, match="completed but wrote no result"):
        handle.result()
    _tag(handle, **{STATUS_TAG: "InProgress"})
    assert handle.state() is JobState.RUNNING
    assert handle.wait(timeout=0.2) is JobState.RUNNING  # bounded
    _tag(handle, **{STATUS_TAG: "Failed", REASON_TAG: "AlgorithmError: out of memory"})
    assert handle.wait() is JobState.FAILED
    with pytest.raises(JobError, match="AlgorithmError: out of memory"):
        handle.result()


def test_cancel_stops_the_training_job(ws: Any, target: str) -> None:
    _, handle = _submit(ws, target, aws_jobs.add, {"a": 1, "b": 2}, instance_type="ml.m5.large")
    _tag(handle, **{STATUS_TAG: "InProgress"})
    handle.cancel()
    assert handle.state() is JobState.CANCELLED  # Stopping
    assert handle.wait() is JobState.CANCELLED
    assert handle.describe()["TrainingJobStatus"] == "Stopped"
    with pytest.raises(JobError, match="stopped"):
        handle.result()
    handle.cancel()  # a stopped job: nothing to do


def test_logs_come_from_cloudwatch(ws: Any, target: str) -> None:
    _, handle = _submit(ws, target, aws_jobs.add, {"a": 1, "b": 2}, instance_type="ml.m5.large")
    logs = aws("logs")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=LOG_GROUP)
    assert handle.logs() == ""
    stream = f"{handle.name}/algo-1-1700000000"
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=f"{handle.name}x/algo-1")  # another job's
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=[
        {"timestamp": now, "message": "epoch 1 loss=0.5"}, {"timestamp": now + 1, "message": "epoch 2 loss=0.25"},
    ])
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=f"{handle.name}x/algo-1",
                        logEvents=[{"timestamp": now, "message": "not mine"}])
    assert handle.logs() == "epoch 1 loss=0.5\nepoch 2 loss=0.25\n"


def _play_sagemaker(handle: SageMakerJob, base: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Do what SageMaker does before the container starts, then run the container's command."""
    described = handle.describe()
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(described["HyperParameters"]))
    s3 = aws("s3")
    for channel in described["InputDataConfig"]:
        url = urlsplit(channel["DataSource"]["S3DataSource"]["S3Uri"])
        folder = base / "input" / "data" / channel["ChannelName"]
        folder.mkdir(parents=True)
        for obj in s3.list_objects_v2(Bucket=url.netloc, Prefix=url.path.lstrip("/")).get("Contents", []):
            rel = obj["Key"][len(url.path.lstrip("/")):]
            s3.download_file(url.netloc, obj["Key"], str(folder / rel))
    env = {**os.environ, "SM_BASE_DIR": str(base), "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "mlops_sdk_aws.entry"], env=env, capture_output=True, text=True, timeout=120,
        cwd=tmp_path,
    )


def test_entry_point_runs_the_job_and_result_reads_it_back(ws: Any, target: str, tmp_path: Path) -> None:
    job, handle = _submit(ws, target, aws_jobs.add, {"a": 2, "b": 3.5})
    base = tmp_path / "opt_ml"
    done = _play_sagemaker(handle, base, tmp_path)
    assert done.returncode == 0, done.stderr
    assert handle.result() == {"total": 5.5, "items": [2, 3.5]}
    assert job.result == {"total": 5.5, "items": [2, 3.5]}
    assert json.loads((base / "model" / "result.json").read_text())["result"]["total"] == 5.5
    run = ws.get_run(handle.run_id())
    assert run.metrics["total"] == 5.5
    assert run.params["a"] in (2, "2")
    assert not (base / "output" / "failure").exists()


def test_hyperparameters_override_params(ws: Any, target: str, tmp_path: Path) -> None:
    _, handle = _submit(ws, target, aws_jobs.add, {"a": 2, "b": 3})
    base = tmp_path / "opt_ml"
    (base / "input" / "config").mkdir(parents=True)
    hp = {**handle.describe()["HyperParameters"], "b": "40"}  # what a tuning job does
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hp))
    # no channel folder: the entry reads the spec from S3 itself
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "mlops_sdk_aws.entry", "--base-dir", str(base)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert handle.result()["total"] == 42


def test_failing_job_writes_the_failure_file(ws: Any, target: str, tmp_path: Path) -> None:
    _, handle = _submit(ws, target, aws_jobs.boom, {"message": "bad data in row 7"})
    base = tmp_path / "opt_ml"
    done = _play_sagemaker(handle, base, tmp_path)
    assert done.returncode == 1
    failure = (base / "output" / "failure").read_text()
    assert "RuntimeError: bad data in row 7" in failure
    # SageMaker marks the job Failed with the failure file as its reason
    _tag(handle, **{STATUS_TAG: "Failed", REASON_TAG: failure[:250]})
    with pytest.raises(JobError, match="bad data in row 7"):
        handle.result()
    assert ws.get_run(handle.run_id()).status.value == "FAILED"


def test_bad_resources_and_settings_are_refused(ws: Any, target: str, bucket: str) -> None:
    before = len(aws("sagemaker").list_training_jobs(MaxResults=100)["TrainingJobSummaries"])
    backend = create_backend("compute", target, root=ws.root)
    with pytest.raises(InvalidValue, match="instance type"):
        backend.check_resources({"instance_type": "m5.large"})
    with pytest.raises(InvalidValue, match="channel name"):
        backend.check_resources({"inputs": {"bad name!": f"{bucket}/x"}})
    with pytest.raises(InvalidValue, match="s3:// URL"):
        backend.check_resources({"inputs": {"train": "/local/data"}})
    with pytest.raises(InvalidValue, match="unknown resource"):
        backend.check_resources({"instance_typo": "ml.m5.large"})
    with pytest.raises(InvalidValue, match="instance_count"):
        backend.check_resources({"instance_count": 0})
    no_role = create_backend("compute", f"sagemaker://us-east-1?bucket={bucket}&image={IMAGE}", root=ws.root)
    with pytest.raises(ConfigError, match="missing role"):
        submit(ws, aws_jobs.add, {"a": 1, "b": 2}, {}, experiment="sm", name=None, compute=no_role)
    no_bucket = create_backend("compute", f"sagemaker://us-east-1?role={ROLE}&image={IMAGE}", root=ws.root)
    with pytest.raises(ConfigError, match="missing bucket"):
        submit(ws, aws_jobs.add, {"a": 1, "b": 2}, {}, experiment="sm", name=None, compute=no_bucket)
    assert len(aws("sagemaker").list_training_jobs(MaxResults=100)["TrainingJobSummaries"]) == before
