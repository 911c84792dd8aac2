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


def hog(megabytes):
    block = bytearray(megabytes * 1_000_000)
    mlops.log_metric("allocated_mb", len(block) / 1_000_000)
    return len(block)


def slow(pid_file, ignore_sigterm=False):
    import signal

    if ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", GRANDCHILD])
    mlops.log_metric("started", 1.0)
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(child.pid))
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(120)
    return "finished"


def killed_by_sigkill():
    import signal

    mlops.log_metric("before_kill", 1.0)
    mlops.active_run().workspace.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def threads_env():
    return {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")}


def gpu_sum(n):
    import torch

    count = torch.cuda.device_count()
    if count:
        total = torch.arange(n, device="cuda", dtype=torch.float64).sum()
        mlops.log_metric("total", total)
        return {"devices": count, "total": float(total)}
    return {"devices": 0}
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


# -- resources and limits ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"cpu": 1}, "unknown resource 'cpu'"),
        ({"cpus": -1}, "positive"),
        ({"cpus": 0}, "positive"),
        ({"cpus": "two"}, "finite number"),
        ({"gpus": -1}, ">= 0"),
        ({"memory": "lots"}, "512MB"),
        ({"memory": -5}, "positive"),
        ({"memory": True}, "512MB"),
        ({"timeout": 0}, "positive"),
        ({"timeout": float("inf")}, "finite"),
        ({"timeout": "soon"}, "duration like '10m'"),
        ({"cpus": 10_000}, "this machine has"),
    ],
)
def test_bad_resources_are_refused_before_anything_runs(
    workspace: mlops.Workspace, jobs_module: ModuleType, resources: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidValue, match=message):
        workspace.submit(jobs_module.train, params={"lr": 0.1}, resources=resources)
    jobs = workspace.root / ".mlops" / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir())
    assert workspace.runs() == []


def test_gpus_on_a_machine_without_any_are_refused(
    workspace: mlops.Workspace, jobs_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # this machine, as far as jobs can see, has no GPU
    with pytest.raises(InvalidValue, match=r"asks for 1 GPU.* has none"):
        workspace.submit(jobs_module.train, params={"lr": 0.1}, resources={"gpus": 1})
    assert workspace.runs() == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512MB", 512_000_000), ("512MiB", 512 * 2**20), ("2G", 2_000_000_000), ("1.5GiB", int(1.5 * 2**30)),
     (1024, 1024), ("100 kb", 100_000)],
)
def test_memory_sizes(text: str | int, expected: int) -> None:
    from mlops_sdk.job import parse_memory

    assert parse_memory(text) == expected


@pytest.mark.parametrize(("text", "expected"), [(30, 30.0), ("90s", 90.0), ("10m", 600.0), ("1.5h", 5400.0)])
def test_durations(text: str | int, expected: float) -> None:
    from mlops_sdk.job import validate_resources

    assert validate_resources({"timeout": text}) == {"timeout": expected}


def test_gpu_count_follows_cuda_visible_devices(
    workspace: mlops.Workspace, jobs_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_sdk.compute.local import LocalCompute, local_gpu_count

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert local_gpu_count() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    LocalCompute(root=workspace.root).check_resources({"gpus": 1})  # accepted
    with pytest.raises(InvalidValue, match="asks for 2 GPUs but this machine has 1"):
        workspace.submit(jobs_module.train, params={"lr": 0.1}, resources={"gpus": 2})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert local_gpu_count() == 0


def test_memory_limit_fails_the_job_and_its_run(workspace: mlops.Workspace, jobs_module: ModuleType) -> None:
    fits = workspace.submit(jobs_module.hog, params={"megabytes": 20}, resources={"memory": "500MB"})
    too_big = workspace.submit(jobs_module.hog, params={"megabytes": 2000}, resources={"memory": "500MB"})
    assert fits.wait(timeout=120) is JobState.SUCCEEDED, fits.logs()
    assert fits.result == 20_000_000
    assert too_big.wait(timeout=120) is JobState.FAILED
    with pytest.raises(JobError, match=r"exceeded its memory limit of 500 MB"):
        too_big.result  # noqa: B018
    run = too_big.run
    assert run is not None and run.status is RunStatus.FAILED
    assert run.error is not None and "memory limit of 500 MB" in run.error


def test_timeout_kills_the_process_tree_and_fails_the_run(
    workspace: mlops.Workspace, jobs_module: ModuleType, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    started = time.monotonic()
    job = workspace.submit(jobs_module.slow, params={"pid_file": str(pid_file)}, resources={"timeout": 5})
    assert job.wait(timeout=60) is JobState.FAILED
    assert time.monotonic() - started < 40
    with pytest.raises(JobError, match="exceeded its time limit of 5 s"):
        job.result  # noqa: B018
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
    run = job.run
    assert run is not None and run.status is RunStatus.FAILED  # ended by the worker, on SIGTERM
    assert run.error is not None and "exceeded its time limit of 5 s" in run.error
    assert run.metrics == {"started": 1.0}


def test_timeout_of_a_worker_that_ignores_sigterm_still_ends_its_run(
    workspace: mlops.Workspace, jobs_module: ModuleType, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    job = workspace.submit(
        jobs_module.slow, params={"pid_file": str(pid_file), "ignore_sigterm": True}, resources={"timeout": 4}
    )
    assert job.wait(timeout=60) is JobState.FAILED  # SIGKILL after the grace period
    with pytest.raises(JobError, match="exceeded its time limit of 4 s"):
        job.result  # noqa: B018
    run = job.run
    assert run is not None and run.status is RunStatus.FAILED  # ended by the backend
    assert run.error == "the job exceeded its time limit of 4 s"
    assert not _alive(int(pid_file.read_text()))


def test_a_killed_worker_never_leaves_its_run_running(workspace: mlops.Workspace, jobs_module: ModuleType) -> None:
    job = workspace.submit(jobs_module.killed_by_sigkill)
    assert job.wait(timeout=60) is JobState.FAILED
    with pytest.raises(JobError, match="SIGKILL"):
        job.result  # noqa: B018
    run = job.run
    assert run is not None and run.status is RunStatus.FAILED
    assert run.error is not None and "SIGKILL" in run.error
    assert run.metrics == {"before_kill": 1.0}


def test_cpus_set_thread_counts_and_zero_gpus_hide_them(
    workspace: mlops.Workspace, jobs_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    job = workspace.submit(jobs_module.threads_env, resources={"cpus": 1, "gpus": 0})
    assert job.result == {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


# -- waiting, queueing, nesting ----------------------------------------------------------
def test_wait_with_a_timeout_returns_the_current_state(
    workspace: mlops.Workspace, jobs_module: ModuleType, tmp_path: Path
) -> None:
    job = workspace.submit(jobs_module.slow, params={"pid_file": str(tmp_path / "pid")})
    started = time.monotonic()
    state = job.wait(timeout=0.5)
    assert time.monotonic() - started < 5
    assert state in (JobState.PENDING, JobState.RUNNING) and not state.is_terminal
    assert job.wait(timeout=0) is job.status
    with pytest.raises(InvalidValue, match="seconds >= 0"):
        job.wait(timeout=-1)
    job.cancel()
    assert job.wait() is JobState.CANCELLED  # no timeout: until it ends


def test_jobs_queue_for_cpus_and_a_queued_job_can_be_cancelled(
    workspace: mlops.Workspace, jobs_module: ModuleType, tmp_path: Path
) -> None:
    cpus = os.cpu_count() or 1
    first = workspace.submit(
        jobs_module.slow, params={"pid_file": str(tmp_path / "pid")}, resources={"cpus": cpus}
    )
    queued = workspace.submit(jobs_module.train, params={"lr": 0.1})
    deadline = time.monotonic() + 60
    while not (tmp_path / "pid").exists():
        assert time.monotonic() < deadline, first.logs()
        time.sleep(0.05)
    assert queued.status is JobState.PENDING  # every CPU is taken by the first job
    queued.cancel()
    assert queued.wait(timeout=10) is JobState.CANCELLED
    assert queued.run is None and queued.logs() == ""  # it never started
    first.cancel()
    assert first.wait(timeout=30) is JobState.CANCELLED


def test_submit_with_parent_nests_the_jobs_run(workspace: mlops.Workspace, jobs_module: ModuleType) -> None:
    exp = workspace.experiment("nested")
    with exp.start_run(name="outer") as outer:
        job = workspace.submit(jobs_module.train, params={"lr": 0.1, "epochs": 1}, parent=outer)
        assert job.wait(timeout=120) is JobState.SUCCEEDED, job.logs()
    run = job.run
    assert run is not None and run.parent_id == outer.id
    assert run.experiment_id == exp.id  # the parent's experiment by default
    assert [r.id for r in outer.children()] == [run.id]
    from mlops_sdk.errors import RunNotFound

    with pytest.raises(RunNotFound):
        workspace.submit(jobs_module.train, params={"lr": 0.1}, parent="no-such-run")
    with pytest.raises(InvalidValue, match="parent"):
        workspace.submit(jobs_module.train, params={"lr": 0.1}, parent=42)  # type: ignore[arg-type]


def test_a_backend_may_accept_its_own_resource_keys() -> None:
    from mlops_sdk.job import validate_resources

    with pytest.raises(InvalidValue, match="unknown resource 'instance_type'"):
        validate_resources({"instance_type": "ml.m5.large"})
    checked = validate_resources(
        {"instance_type": "ml.m5.large", "inputs": {"train": "s3://b/t/"}, "timeout": "10m"},
        backend_keys=("instance_type", "inputs"),
    )
    assert checked == {"instance_type": "ml.m5.large", "inputs": {"train": "s3://b/t/"}, "timeout": 600}
    with pytest.raises(InvalidValue, match="must be a JSON value"):
        validate_resources({"inputs": {"train": object()}}, backend_keys=("inputs",))
    with pytest.raises(InvalidValue, match="this compute backend takes cpus, gpus, memory, timeout, inputs"):
        validate_resources({"bogus": 1}, backend_keys=("inputs",))


def test_a_job_asking_for_a_gpu_gets_one_and_gpus_0_hides_them(
    workspace: mlops.Workspace, jobs_module: ModuleType
) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    job = workspace.submit(jobs_module.gpu_sum, params={"n": 1000}, resources={"gpus": 1})
    assert job.wait(timeout=300) is JobState.SUCCEEDED, job.logs()
    assert job.result["devices"] >= 1 and job.result["total"] == 499500.0
    assert job.run is not None and job.run.metrics["total"] == 499500.0
    hidden = workspace.submit(jobs_module.gpu_sum, params={"n": 10}, resources={"gpus": 0})
    assert hidden.wait(timeout=300) is JobState.SUCCEEDED, hidden.logs()
    assert hidden.result == {"devices": 0}
