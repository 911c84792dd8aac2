"""The ``ray://`` compute backend against a real local Ray instance (2 CPUs, started once per session)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import mlops_ray_jobs as jobs
import pytest
from mlops_sdk.compute.base import JobState
from mlops_sdk.errors import ConfigError, InvalidValue, JobError, MissingDependency
from mlops_sdk.records import RunStatus

RAY_CPUS = 2  # the session's instance (conftest.RAY_URI)


def _wait_running(job: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while job.status is not JobState.RUNNING:
        assert not job.status.is_terminal, job.logs()
        assert time.monotonic() < deadline, f"the job did not start: {job.status}"
        time.sleep(0.1)


# -- URIs: no Ray needed --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "kind", "address"),
    [
        ("ray://local", "local", "local"),
        ("ray://local?num_cpus=2&num_gpus=0", "local", "local"),
        ("ray://auto", "auto", "auto"),
        ("ray://head.example:10001", "client", "ray://head.example:10001"),
        ("ray://10.0.0.5:10001?namespace=team&working_dir=.", "client", "ray://10.0.0.5:10001"),
    ],
)
def test_uris(uri: str, kind: str, address: str) -> None:
    from mlops_sdk_ray.compute import parse_uri

    target = parse_uri(uri)
    assert (target.kind, target.address) == (kind, address)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ray://", "expected ray://local"),
        ("ray://head", "expected ray://local"),
        ("ray://head:notaport", "expected ray://local"),
        ("ray://head:99999", "expected ray://local"),
        ("ray://local?num_cpus=two", "whole number"),
        ("ray://local?num_cpus=-1", "negative"),
        ("ray://local?cpus=2", "unknown option"),
        ("ray://head:10001?num_cpus=2", "ray://local only"),
        ("ray://local?cancel_grace=-1", "cancel_grace"),
        ("ray://local?check_resources=maybe", "true or false"),
    ],
)
def test_bad_uris_are_config_errors(uri: str, message: str) -> None:
    import mlops_sdk as mlops

    with pytest.raises(ConfigError, match=message):
        mlops.Workspace.open(compute=uri).compute  # noqa: B018


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({}, {"num_cpus": 1.0, "num_gpus": 0.0}),
        ({"cpus": 2, "gpus": 0.5}, {"num_cpus": 2.0, "num_gpus": 0.5}),
        (
            {"cpus": 0.5, "memory": 256_000_000},
            {"num_cpus": 0.5, "num_gpus": 0.0, "memory": 256_000_000},
        ),
        ({"memory": "1GiB"}, {"num_cpus": 1.0, "num_gpus": 0.0, "memory": 2**30}),
    ],
)
def test_resources_map_onto_ray_task_options(
    resources: dict[str, Any], expected: dict[str, Any]
) -> None:
    from mlops_sdk_ray.compute import task_resources

    assert task_resources(resources).options() == expected


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"cpus": 1.5}, "whole numbers"),
        ({"disk": 1}, "does not know"),
        ({"memory": "lots"}, "size like"),
    ],
)
def test_resources_ray_cannot_take_are_refused(resources: dict[str, Any], message: str) -> None:
    from mlops_sdk_ray.compute import task_resources

    with pytest.raises(InvalidValue, match=message):
        task_resources(resources)


def test_the_plugin_registers_ray_without_importing_it() -> None:
    code = (
        "import sys\n"
        "from mlops_sdk.plugins import get_plugin_manager\n"
        "entry = get_plugin_manager().registry.lookup('compute', 'ray://local')\n"
        "assert entry.plugin == 'ray', entry\n"
        "assert 'ray' not in sys.modules, 'plugin.py imported ray'\n"
        "print(entry.target)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "mlops_sdk_ray.compute:RayCompute" in out.stdout


# -- jobs on the session's Ray instance -------------------------------------------------------
def test_sklearn_job_returns_its_result_and_a_tracked_run(workspace: Any) -> None:
    job = workspace.submit(
        jobs.train_classifier, params={"C": 0.5}, resources={"cpus": 1}, experiment="ray-train"
    )
    assert job.wait(timeout=120) is JobState.SUCCEEDED, job.logs()
    result = job.result
    assert 0.5 < result["acc"] <= 1.0
    run = job.run
    assert run is not None and run.status is RunStatus.FINISHED
    assert run.params["C"] == 0.5
    assert run.metrics["acc"] == pytest.approx(result["acc"])
    assert [p.value for p in run.metric_history("loss")][:2] == [0.9, 0.5]
    assert run.tags["mlops.job_id"] == job.id
    assert "coef.txt" in [a.path for a in run.artifacts()]
    assert f"trained C=0.5 acc={result['acc']:.3f}" in job.logs()
    assert [r.id for r in workspace.experiment("ray-train").runs()] == [run.id]


def test_output_from_c_code_and_child_processes_is_captured(workspace: Any) -> None:
    job = workspace.submit(jobs.c_level_output)
    assert job.result == "ok"
    assert "written to fd 1" in job.logs()
    assert "from a child process" in job.logs()


def test_jobs_run_in_parallel_within_the_cluster_cpus(workspace: Any, tmp_path: Any) -> None:
    """Four 1-CPU jobs on a 2-CPU instance: two at a time, never more."""
    submitted = [
        workspace.submit(
            jobs.rendezvous, params={"folder": str(tmp_path / "meet")}, resources={"cpus": 1}
        )
        for _ in range(4)
    ]
    peaks = [job.result["peak"] for job in submitted]
    assert max(peaks) == RAY_CPUS, peaks  # the first job waited for the second, both running
    assert all(job.run.status is RunStatus.FINISHED for job in submitted)


def test_a_job_asking_for_all_cpus_runs_alone(workspace: Any) -> None:
    big = workspace.submit(jobs.window, params={"seconds": 1.0}, resources={"cpus": RAY_CPUS})
    small = workspace.submit(jobs.window, params={"seconds": 1.0}, resources={"cpus": 1})
    a, b = big.result, small.result
    assert a["end"] <= b["start"] or b["end"] <= a["start"]


def test_a_failing_job_raises_job_error_with_the_traceback_in_its_logs(workspace: Any) -> None:
    job = workspace.submit(jobs.fail, params={"reason": "no data"})
    assert job.wait(timeout=120) is JobState.FAILED
    with pytest.raises(JobError, match="ValueError: bad input: no data"):
        job.result  # noqa: B018
    logs = job.logs()
    assert "about to fail" in logs
    assert (
        "Traceback (most recent call last)" in logs
        and 'raise ValueError(f"bad input: {reason}")' in logs
    )
    run = job.run
    assert run is not None and run.status is RunStatus.FAILED
    assert run.metrics["before_failure"] == 1.0
    assert "bad input: no data" in (run.error or "")


def test_a_function_the_workers_cannot_import_is_named_in_the_error(workspace: Any) -> None:
    job = workspace.submit(jobs.orphan)
    assert job.wait(timeout=120) is JobState.FAILED
    with pytest.raises(
        JobError, match=r"mlops_ray_no_such_module:orphan.*cannot import the job function"
    ):
        job.result  # noqa: B018
    assert "No module named 'mlops_ray_no_such_module'" in job.logs()
    assert workspace.runs() == []  # it failed before any run started


def test_cancel_stops_a_job_blocked_in_a_call_and_its_run_ends_killed(workspace: Any) -> None:
    job = workspace.submit(jobs.sleepy, params={"seconds": 120})
    _wait_running(job)
    started = time.monotonic()
    job.cancel()
    assert time.monotonic() - started < 30
    assert job.status is JobState.CANCELLED
    with pytest.raises(JobError, match="cancelled"):
        job.result  # noqa: B018
    run = job.run
    assert run is not None and run.status is RunStatus.KILLED
    assert "sleeping" in job.logs()
    # the worker is really gone: the CPUs are free again
    after = workspace.submit(jobs.window, params={"seconds": 0.1}, resources={"cpus": RAY_CPUS})
    assert after.wait(timeout=60) is JobState.SUCCEEDED


def test_cancel_interrupts_a_python_loop_which_ends_its_own_run(workspace: Any) -> None:
    job = workspace.submit(jobs.spin, params={"seconds": 120})
    _wait_running(job)
    time.sleep(0.5)
    job.cancel()
    assert job.status is JobState.CANCELLED
    run = job.run
    assert run is not None and run.status is RunStatus.KILLED
    assert "KeyboardInterrupt" in (run.error or "")  # ended by the run itself, not by the driver


def test_cancel_a_job_still_waiting_for_cpus(workspace: Any) -> None:
    blocker = workspace.submit(jobs.window, params={"seconds": 3}, resources={"cpus": RAY_CPUS})
    waiting = workspace.submit(jobs.window, params={"seconds": 0.1})
    assert waiting.status is JobState.PENDING
    waiting.cancel()
    assert waiting.status is JobState.CANCELLED
    assert waiting.run is None
    assert blocker.wait(timeout=60) is JobState.SUCCEEDED


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (
            {"cpus": 64},
            r"asks for CPU 64 but no node of the Ray cluster .* \(the largest offer CPU 2\)",
        ),
        ({"gpus": 1}, r"asks for .*GPU 1 but no node"),
        ({"memory": "64TiB"}, r"asks for .*memory 65536.00 GiB but no node"),
    ],
)
def test_resources_no_node_has_are_refused_instead_of_pending_forever(
    workspace: Any, resources: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidValue, match=message):
        workspace.submit(jobs.window, params={"seconds": 0.1}, resources=resources)
    assert workspace.runs() == []


def test_memory_is_requested_from_ray(workspace: Any) -> None:
    job = workspace.submit(jobs.window, params={"seconds": 0.1}, resources={"memory": "100MB"})
    assert job.wait(timeout=60) is JobState.SUCCEEDED, job.logs()


def test_a_job_over_its_time_limit_fails_and_its_run_too(workspace: Any) -> None:
    job = workspace.submit(jobs.spin, params={"seconds": 120}, resources={"timeout": 2})
    assert job.wait(timeout=60) is JobState.FAILED
    with pytest.raises(JobError, match="exceeded its time limit of 2 s"):
        job.result  # noqa: B018
    run = job.run
    assert run is not None and run.status is RunStatus.FAILED
    assert "time limit of 2 s" in (run.error or "")


def test_a_job_stuck_past_its_time_limit_is_killed_and_its_run_fails(workspace: Any) -> None:
    started = time.monotonic()
    job = workspace.submit(jobs.sleepy, params={"seconds": 120}, resources={"timeout": 1})
    assert job.wait(timeout=60) is JobState.FAILED
    assert time.monotonic() - started < 30
    with pytest.raises(JobError, match="exceeded its time limit of 1 s"):
        job.result  # noqa: B018
    run = job.run
    assert run is not None and run.status is RunStatus.FAILED


def test_a_job_stuck_before_its_run_starts_is_killed_after_its_start_allowance(
    ray_instance: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlops_ray_stuck_import as stuck
    import mlops_sdk as mlops

    monkeypatch.chdir(tmp_path)
    ws = mlops.Workspace.open(tmp_path, compute="ray://local?start_allowance=1")
    try:
        started = time.monotonic()
        job = ws.submit(stuck.quick, resources={"timeout": 1})
        assert job.wait(timeout=120) is JobState.FAILED
        assert time.monotonic() - started < 90
        with pytest.raises(
            JobError, match=r"did not start its run within 2 s .*start_allowance=1 s"
        ):
            job.result  # noqa: B018
        assert job.run is None  # it never got as far as its run
    finally:
        ws.close()


def test_one_process_uses_one_ray_cluster(ray_instance: Any) -> None:
    from mlops_sdk_ray.compute import RayCompute

    with pytest.raises((ConfigError, MissingDependency), match=r"already connected|grpcio"):
        RayCompute("ray://127.0.0.1:10001").connect()


@pytest.mark.slow  # about 10 s: three sklearn trials, each in a fresh worker process
def test_sweep_trials_run_as_ray_tasks(workspace: Any) -> None:
    exp = workspace.experiment("ray-sweep")
    if not hasattr(exp, "sweep"):
        pytest.skip("Experiment.sweep is not in mlops_sdk yet (mlops_sdk/sweep.py)")
    result = exp.sweep(
        jobs.train_classifier,
        grid={"C": [0.01, 1.0, 100.0]},
        max_parallel=2,
        metric="val_loss",
        mode="min",
    )
    trials = list(result)
    assert len(trials) == 3
    assert all(t.status is RunStatus.FINISHED for t in trials)
    losses = [t.metrics["val_loss"] for t in trials]
    assert losses == sorted(losses)  # best first
    assert {t.params["C"] for t in trials} == {0.01, 1.0, 100.0}
    assert all(t.parent_id == result.parent.id for t in trials)
    assert len({t.tags["mlops.job_id"] for t in trials}) == 3
