"""``ws.submit``: functions run as tracked jobs in real subprocesses on the local compute."""

from __future__ import annotations

import importlib
import os
import textwrap
import time
from pathlib import Path
from types import ModuleType

import pytest

import mlops_sdk as mlops
from mlops_sdk.compute.base import JobState
from mlops_sdk.errors import InvalidValue, JobError
from mlops_sdk.records import RunStatus

JOB_MODULE = """
import os
import subprocess
import sys
import time

import mlops_sdk as mlops


def train(lr, epochs=3):
    print(f"training with lr={lr}", flush=True)
    for epoch in range(epochs):
        mlops.log_metric("loss", 1.0 / (epoch + 1))
    mlops.log_metrics({"acc": 0.5 + lr})
    mlops.set_tag("trained", "yes")
    return {"best_loss": 1.0 / epochs, "epochs": [e for e in range(epochs)], "ok": True}


def fail(reason):
    mlops.log_metric("before_failure", 1.0)
    print("about to fail", file=sys.stderr, flush=True)
    raise ValueError(f"bad input: {reason}")


def not_json():
    return object()


GRANDCHILD = "import time; time.sleep(120)"
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"


def sleepy(pid_file, stubborn=False):
    child = subprocess.Popen([sys.executable, "-c", STUBBORN if stubborn else GRANDCHILD])
    mlops.log_metric("started", 1.0)
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(child.pid))
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(120)
    return "finished"
"""


@pytest.fixture
def jobs_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    folder = tmp_path / "code"
    folder.mkdir()
    name = f"mlops_test_jobs_{os.getpid()}_{time.monotonic_ns()}"
    (folder / f"{name}.py").write_text(textwrap.dedent(JOB_MODULE))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(tmp_path)  # the worker runs in the submitter's cwd
    return importlib.import_module(name)


def test_submit_runs_function_as_tracked_job(
    workspace: mlops.Workspace, jobs_module: ModuleType
) -> None:
    job = workspace.submit(
        jobs_module.train, params={"lr": 0.25, "epochs": 4}, experiment="jobs-exp"
    )
    assert job.wait(timeout=120) is JobState.SUCCEEDED
    assert job.status is JobState.SUCCEEDED
    assert job.result == {"best_loss": 0.25, "epochs": [0, 1, 2, 3], "ok": True}
    assert "training with lr=0.25" in job.logs()

    run = job.run
    assert run is not None
    assert run.status is RunStatus.FINISHED
    assert run.params == {"lr": 0.25, "epochs": 4}
    assert run.metrics == {"loss": 0.25, "acc": 0.75}
    assert [m.value for m in run.metric_history("loss")] == [1.0, 0.5, 1 / 3, 0.25]
    assert run.tags["trained"] == "yes"
    assert run.tags["mlops.job_id"] == job.id
    assert workspace.get_experiment("jobs-exp").id == run.experiment_id
    assert run.name.startswith("train-")


def test_failing_job_raises_job_error_and_fails_run(
    workspace: mlops.Workspace, jobs_module: ModuleType
) -> None:
    job = workspace.submit(jobs_module.fail, params={"reason": "negative rows"}, name="will-fail")
    assert job.wait(timeout=120) is JobState.FAILED
    with pytest.raises(JobError, match="bad input: negative rows") as info:
        job.result  # noqa: B018
    assert "fail" in str(info.value)
    logs = job.logs()
    assert "about to fail" in logs and "ValueError: bad input: negative rows" in logs
    run = job.run
    assert run is not None and run.name == "will-fail"
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "bad input: negative rows" in run.error
    assert run.metrics == {"before_failure": 1.0}


def test_non_json_result_fails_the_job(workspace: mlops.Workspace, jobs_module: ModuleType) -> None:
    job = workspace.submit(jobs_module.not_json)
    assert job.wait(timeout=120) is JobState.FAILED
    with pytest.raises(JobError, match="not JSON"):
        job.result  # noqa: B018
    assert job.run is not None and job.run.status is RunStatus.FAILED


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("stubborn", [False, True], ids=["plain", "ignores-sigterm"])
def test_cancel_stops_the_whole_process_tree(
    workspace: mlops.Workspace, jobs_module: ModuleType, tmp_path: Path, stubborn: bool
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    job = workspace.submit(
        jobs_module.sleepy, params={"pid_file": str(pid_file), "stubborn": stubborn}
    )
    deadline = time.monotonic() + 60
    while not pid_file.exists():
        assert time.monotonic() < deadline, f"the job never started: {job.logs()}"
        assert not job.status.is_terminal, job.logs()
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    assert _alive(grandchild)
    assert job.status is JobState.RUNNING

    started = time.monotonic()
    job.cancel()
    assert job.wait(timeout=30) is JobState.CANCELLED
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild), "the job's own subprocess survived cancel()"
    with pytest.raises(JobError, match="cancelled"):
        job.result  # noqa: B018
    run = job.run
    assert run is not None
    assert run.status is RunStatus.KILLED  # the worker ended its run on SIGTERM
    assert run.metrics == {"started": 1.0}


def test_submit_refuses_functions_another_process_cannot_find(workspace: mlops.Workspace) -> None:
    with pytest.raises(InvalidValue, match="lambda"):
        workspace.submit(lambda: 1)

    def local_fn() -> int:
        return 1

    with pytest.raises(InvalidValue, match="nested"):
        workspace.submit(local_fn)
    with pytest.raises(InvalidValue):
        workspace.submit("not a function")  # type: ignore[arg-type]


def test_submit_refuses_non_json_params(
    workspace: mlops.Workspace, jobs_module: ModuleType
) -> None:
    with pytest.raises(InvalidValue, match="JSON"):
        workspace.submit(jobs_module.train, params={"lr": object()})
    with pytest.raises(InvalidValue, match="JSON"):
        workspace.submit(jobs_module.train, params={"lr": float("nan")})
    assert not (workspace.root / ".mlops" / "jobs").exists() or not any(
        (workspace.root / ".mlops" / "jobs").iterdir()
    )
