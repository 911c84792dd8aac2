"""The ``azureml://`` compute backend, against the recorded-response transport.

Azure ML has no emulator: the real ``azure.ai.ml.MLClient`` and
``azure.storage.blob`` clients run over :class:`RecordedTransport`, which
answers with responses shaped after the public REST API (see
``azureml_transport.py``; they are not captures of a live workspace) and
records every request, so these tests assert on exactly what the plugin sent.

What the job would do in Azure is done here for real: the command the plugin
sent is run with ``sh`` on this machine, with the job spec from the request's
environment variables, and its output folder's files are put where the
recorded datastore serves them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
from azureml_transport import (
    ACCOUNT,
    NAMES,
    TARGET,
    FakeCredential,
    RecordedTransport,
    client_options,
    workspace_transport,
)
from hypothesis import given
from hypothesis import strategies as st
from mlops_sdk.compute.base import FunctionRef, JobSpec, JobState
from mlops_sdk.errors import AuthenticationError, ConfigError, InvalidValue, JobError

from mlops_sdk_azure.azureml_compute import AzureMLCompute, map_state

CONTAINER = "azureml-blobstore-11111111-2222-3333-4444-555555555555"
QUERY = "compute=cpu-cluster&image=mlopsreg.azurecr.io/mlops-job:1&instance_type=Standard_DS3_v2&poll_interval=0"


def make_spec(job_id: str = "0f3a9c2b7d", **changes: Any) -> JobSpec:
    values: dict[str, Any] = {
        "id": job_id,
        "function": FunctionRef("statistics", "fmean"),
        "params": {"data": [1, 2, 3, 6]},
        "resources": {"timeout": 90.5, "cpus": 2},
        "workspace": {"root": "/home/me/project", "tracking": "postgresql://mlops@db.example.com/mlops",
                      "storage": "az://mlops/store"},
        "experiment": "churn baseline",
        "run_name": "fmean-1",
        "cwd": "/home/me/project",
        "sys_path": ("/home/me/project",),
    }
    values.update(changes)
    return JobSpec(**values)


def compute(transport: RecordedTransport, query: str = QUERY) -> AzureMLCompute:
    return AzureMLCompute(f"{TARGET}?{query}", credential=FakeCredential(), client_kwargs=client_options(transport))


@pytest.fixture
def transport() -> RecordedTransport:
    return workspace_transport()


def run_job_here(transport: RecordedTransport, job: str, tmp_path: Path) -> int:
    """Do what the Azure ML node would: run the job's command, publish its output folder."""
    put = transport.sent("PUT", f"/jobs/{job}")[-1].body["properties"]
    spec = json.loads(put["environmentVariables"]["MLOPS_JOB_SPEC"])
    # The test has no tracking server: the job logs into a local workspace instead.
    root = tmp_path / "ws"
    spec["workspace"] = {"root": str(root), "tracking": f"sqlite:///{root}/tracking.db", "storage": f"file://{root}/store"}
    out = tmp_path / "outputs" / "mlops"
    out.mkdir(parents=True)
    command = put["command"].replace("${{outputs.mlops}}", str(out))
    env = {**os.environ, **put["environmentVariables"], "MLOPS_JOB_SPEC": json.dumps(spec), "MLOPS_PLUGINS": ""}
    bindir = Path(sys.executable).parent
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(["sh", "-c", command], env=env, cwd=tmp_path, capture_output=True, timeout=120)
    for file in out.iterdir():
        transport.put_blob(CONTAINER, f"mlops-jobs/{job}/{file.name}", file.read_bytes())
    shutil.rmtree(out)
    return proc.returncode


def test_submit_sends_a_command_job(transport: RecordedTransport) -> None:
    handle = compute(transport).submit(make_spec())
    assert handle.name == "mlops-0f3a9c2b7d"
    (put,) = transport.sent("PUT", "/jobs/")
    assert put.url.startswith(
        f"https://management.azure.com/subscriptions/{NAMES['sub']}/resourceGroups/{NAMES['rg']}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{NAMES['ws']}/jobs/mlops-0f3a9c2b7d?"
    )
    assert put.api_version
    props = put.body["properties"]
    assert props["jobType"] == "Command"
    assert "python -m mlops_sdk.compute.worker ${{outputs.mlops}}" in props["command"]
    assert props["computeId"].endswith(f"/workspaces/{NAMES['ws']}/computes/cpu-cluster")
    assert props["resources"]["instanceType"] == "Standard_DS3_v2"
    assert props["resources"]["instanceCount"] == 1
    assert props["limits"]["timeout"] == "PT1M31S"  # 90.5 s, rounded up
    assert props["experimentName"] == "churn-baseline"
    assert props["displayName"] == "fmean-1"
    assert props["tags"]["mlops.job_id"] == "0f3a9c2b7d"
    assert props["tags"]["mlops.resources.cpus"] == "2"
    assert props["outputs"]["mlops"] == {
        "jobOutputType": "uri_folder",
        "mode": "ReadWriteMount",
        "uri": "azureml://datastores/workspaceblobstore/paths/mlops-jobs/mlops-0f3a9c2b7d/",
    }
    # the image became an anonymous environment, registered first
    (env_put,) = transport.sent("PUT", "/environments/")
    assert env_put.body["properties"]["image"] == "mlopsreg.azurecr.io/mlops-job:1"
    assert props["environmentId"].endswith(env_put.resource)
    sent = json.loads(props["environmentVariables"]["MLOPS_JOB_SPEC"])
    assert sent["function"] == {"module": "statistics", "qualname": "fmean", "script": None}
    assert sent["params"] == {"data": [1, 2, 3, 6]}
    assert sent["workspace"] == {"root": ".", "tracking": "postgresql://mlops@db.example.com/mlops",
                                 "storage": "az://mlops/store"}
    assert sent["sys_path"] == []
    # nothing left the recorded hosts, and every request carried the credential's token
    assert {r.host for r in transport.requests} == {"management.azure.com"}


def test_registered_environment_is_referenced_not_created(transport: RecordedTransport) -> None:
    compute(transport, "environment=azureml:mlops-job:3&poll_interval=0").submit(make_spec())
    assert transport.sent("PUT", "/environments/") == []
    (put,) = transport.sent("PUT", "/jobs/")
    assert put.body["properties"]["environmentId"].endswith(f"/workspaces/{NAMES['ws']}/environments/mlops-job/versions/3")
    assert "computeId" not in put.body["properties"]  # no compute option: serverless


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("NotStarted", JobState.PENDING), ("Queued", JobState.PENDING), ("Preparing", JobState.PENDING),
        ("Starting", JobState.PENDING), ("Running", JobState.RUNNING), ("Finalizing", JobState.RUNNING),
        ("Completed", JobState.SUCCEEDED), ("Failed", JobState.FAILED), ("Canceled", JobState.CANCELLED),
        ("CancelRequested", JobState.CANCELLED), ("SomethingNew", JobState.PENDING),
    ],
)
def test_state_mapping(status: str, state: JobState) -> None:
    assert map_state(status) is state


def test_job_runs_to_a_result(transport: RecordedTransport, tmp_path: Path) -> None:
    handle = compute(transport).submit(make_spec())
    transport.load("job_lifecycle", **NAMES, job=handle.name, final="Completed")
    assert handle.state() is JobState.PENDING
    assert run_job_here(transport, handle.name, tmp_path) == 0
    assert handle.wait() is JobState.SUCCEEDED
    assert handle.result() == 3.0
    assert handle.run_id()
    assert isinstance(handle.logs(), str)
    gets = transport.sent("GET", f"/jobs/{handle.name}")
    assert len(gets) == 4  # polled until Completed, then no more
    blob_reads = [r for r in transport.requests if r.host == f"{ACCOUNT}.blob.core.windows.net"]
    assert blob_reads and all(r.method == "GET" for r in blob_reads)
    assert all(f"/{CONTAINER}/mlops-jobs/{handle.name}/" in r.path for r in blob_reads)


def test_failed_job_raises_its_error(transport: RecordedTransport, tmp_path: Path) -> None:
    spec = make_spec("a1b2c3d4", params={"data": []})  # fmean([]) raises StatisticsError
    handle = compute(transport).submit(spec)
    transport.load("job_lifecycle", **NAMES, job=handle.name, final="Failed")
    assert run_job_here(transport, handle.name, tmp_path) == 1
    assert handle.wait() is JobState.FAILED
    with pytest.raises(JobError, match="StatisticsError"):
        handle.result()
    assert "StatisticsError" in handle.logs()


def test_wait_with_timeout_returns_the_current_state(transport: RecordedTransport) -> None:
    handle = compute(transport).submit(make_spec())
    transport.load("job_lifecycle", **NAMES, job=handle.name, final="Completed")
    assert handle.wait(timeout=0) is JobState.PENDING
    assert "no log yet" in handle.logs()


def test_cancel(transport: RecordedTransport) -> None:
    handle = compute(transport).submit(make_spec())
    handle.cancel()
    (post,) = transport.sent("POST", "/cancel")
    assert post.resource == f"jobs/{handle.name}/cancel"
    assert handle.state() is JobState.CANCELLED
    with pytest.raises(JobError, match="cancelled"):
        handle.result()
    handle.cancel()  # again: nothing more is sent
    assert len(transport.sent("POST", "/cancel")) == 1


def test_refused_token_is_an_authentication_error(transport: RecordedTransport) -> None:
    transport.load("unauthorized", method="PUT", path="/jobs/")
    with pytest.raises(AuthenticationError, match=r"azureml compute azureml://.*HTTP 401"):
        compute(transport).submit(make_spec())


@pytest.mark.parametrize(
    "uri",
    [
        "azureml://not-a-guid/rg/mlws",
        f"azureml://{NAMES['sub']}/rg",
        f"azureml://{NAMES['sub']}/rg/mlws/extra",
        f"azureml://{NAMES['sub']}/rg/w?image=x",
        f"azureml://{NAMES['sub']}/rg/mlws?image=x&client_secret=hunter2",
        f"azureml://user:hunter2@{NAMES['sub']}/rg/mlws?image=x",
        f"azureml://{NAMES['sub']}/rg/mlws?image=x&colour=blue",
        f"azureml://{NAMES['sub']}/rg/mlws",  # no environment or image
        f"azureml://{NAMES['sub']}/rg/mlws?image=x&compute=bad_name!",
        "s3://bucket/x",
    ],
)
def test_bad_uri_is_a_config_error(uri: str, transport: RecordedTransport) -> None:
    with pytest.raises(ConfigError) as info:
        AzureMLCompute(uri, credential=FakeCredential(), client_kwargs=client_options(transport))
    assert "azureml compute" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert transport.requests == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": "bad id!"}, "job name"),
        ({"function": FunctionRef("__main__", "train", script="/home/me/train.py")}, "defined in a script"),
        ({"resources": {"nodes": 3}}, "does not know resource"),
        ({"workspace": {"root": ".", "tracking": "sqlite:///t.db", "storage": "az://c/p"}}, "cannot reach"),
        ({"workspace": {"root": ".", "tracking": "postgresql://u:pw@db/x", "storage": "az://c/p"}}, "password"),
    ],
)
def test_bad_spec_is_refused_before_any_request(
    changes: dict[str, Any], message: str, transport: RecordedTransport
) -> None:
    with pytest.raises((InvalidValue, ConfigError), match=message):
        compute(transport).submit(attrs.evolve(make_spec(), **changes))
    assert transport.requests == []


_hex = "0123456789abcdef"


@given(
    sub=st.tuples(*(st.text(_hex, min_size=n, max_size=n) for n in (8, 4, 4, 4, 12))).map("-".join),
    group=st.from_regex(r"[A-Za-z0-9_()-][A-Za-z0-9_.()-]{0,40}[A-Za-z0-9_()-]", fullmatch=True),
    workspace=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{2,32}", fullmatch=True),
    compute_name=st.from_regex(r"[a-z][a-z0-9-]{0,14}[a-z0-9]", fullmatch=True),
)
def test_uri_round_trip(sub: str, group: str, workspace: str, compute_name: str) -> None:
    backend = AzureMLCompute(f"azureml://{sub}/{group}/{workspace}?compute={compute_name}&environment=azureml:e:1")
    assert (backend.target.subscription, backend.target.resource_group, backend.target.workspace) == (sub, group, workspace)
    assert backend.options.compute == compute_name
    again = AzureMLCompute(f"{backend.target.uri}?compute={compute_name}&environment=azureml:e:1")
    assert again.target == backend.target
