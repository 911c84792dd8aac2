"""Nothing is lost (DESIGN.md §5): real processes, real signals, a real SQLite file.

Each test runs a small script in a child process that logs into a workspace
under ``tmp_path``, ends it in some way (SIGKILL, SIGTERM, Ctrl-C, an
exception, falling off the end), then reads the workspace back from this
process.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import mlops_sdk as mlops
from mlops_sdk.records import RunStatus
from mlops_sdk.tracking.writer import DEFAULT_FLUSH_INTERVAL

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

# Scheduling slack on a loaded CI machine, on top of the flush interval.
SLACK = 0.3


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(body))
    return path


def _spawn(script: Path, ws_root: Path) -> subprocess.Popen[str]:
    ws_root.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, str(script), str(ws_root)],
        cwd=ws_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _read_line(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    """The next stdout line of ``proc``; fail (with its stderr) if it dies first."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(max(deadline - time.monotonic(), 1))
        pytest.fail(
            f"child exited ({proc.returncode}) before printing: {proc.stderr.read() if proc.stderr else ''}"
        )
    return line.strip()


def _finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    return out, err


def _only_run(ws_root: Path) -> mlops.Run:
    ws = mlops.Workspace.open(ws_root)
    runs = ws.runs()
    assert len(runs) == 1, runs
    return runs[0]


def _assert_contiguous(steps: list[int]) -> None:
    assert steps == list(range(len(steps))), "metric steps have gaps or are out of order"


# A child that logs one point per millisecond until something stops it.
# After the first 200 points it prints "ready"; the loop counter ``i`` is
# printed from ``finally`` when the process gets the chance.
LOOP = """
    i = 0
    try:
        with exp.start_run(name="loop") as run:
            print(run.id, flush=True)
            while True:
                run.log_metric("m", float(i) * 0.5)   # step: auto-increment
                i += 1
                if i == 200:
                    print("ready", flush=True)
                time.sleep(0.001)
    finally:
        print(f"logged {i}", flush=True)
"""

HEADER = """
    import signal, sys, time
    # Ctrl-C raises KeyboardInterrupt, as in a terminal, even when the test
    # runner was started with SIGINT ignored (a background job of a shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import mlops_sdk as mlops
    ws = mlops.Workspace.open(sys.argv[1])
    exp = ws.experiment("crash")
"""


@pytest.mark.slow
def test_sigkill_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    ws_root = tmp_path / "ws"
    script = _script(
        tmp_path,
        HEADER
        + """
    run = exp.start_run(name="killed")
    print(run.id, flush=True)
    i = 0
    while True:
        run.log_metric("m", float(i), step=i)
        i += 1
        time.sleep(0.001)
    """,
    )
    proc = _spawn(script, ws_root)
    run_id = _read_line(proc)
    started = time.time()
    time.sleep(1.6)  # ≥ 1.5 s of logging: several flushes have happened
    os.kill(proc.pid, signal.SIGKILL)
    kill_time = time.time()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # The file is a consistent SQLite database, not a torn one.
    db = ws_root / ".mlops" / "tracking.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    ws = mlops.Workspace.open(ws_root)
    run = ws.get_run(run_id)
    assert run.status is RunStatus.RUNNING  # nobody could end it
    history = run.metric_history("m")
    steps = [p.step for p in history]
    assert len(steps) > 100, "a 1.6 s child flushed almost nothing"
    _assert_contiguous(steps)
    assert [p.value for p in history] == [float(s) for s in steps]
    last = history[-1].timestamp
    assert last >= started
    missing = kill_time - last
    assert missing <= DEFAULT_FLUSH_INTERVAL + SLACK, f"{missing:.3f} s of points lost"
    # The store is still writable after the crash.
    with ws.experiment("crash").start_run(name="after") as after:
        after.log_metric("x", 1.0)
    assert ws.get_run(after.id).metrics == {"x": 1.0}
    ws.close()


def _signal_after_ready(tmp_path: Path, sig: int) -> tuple[str, int, float, int, str]:
    ws_root = tmp_path / "ws"
    proc = _spawn(_script(tmp_path, HEADER + LOOP), ws_root)
    run_id = _read_line(proc)
    assert _read_line(proc) == "ready"
    time.sleep(0.3)
    sent = time.time()
    os.kill(proc.pid, sig)
    out, err = _finish(proc)
    logged = [line for line in out.splitlines() if line.startswith("logged ")]
    assert logged, (out, err)
    return run_id, int(logged[-1].split()[1]), sent, proc.returncode, err


@pytest.mark.slow
def test_sigterm_ends_run_killed_with_everything_logged(tmp_path: Path) -> None:
    run_id, logged, sent, rc, err = _signal_after_ready(tmp_path, signal.SIGTERM)
    assert rc == 143, err
    run = mlops.Workspace.open(tmp_path / "ws").get_run(run_id)
    assert run.status is RunStatus.KILLED
    assert run.end_time is not None and run.end_time >= sent
    assert run.error and "Terminated" in run.error
    history = run.metric_history("m")
    steps = [p.step for p in history]
    _assert_contiguous(steps)
    # Every point logged before the signal is stored (the handler may fire
    # between log_metric and the counter increment: one more point).
    assert logged <= len(steps) <= logged + 1
    assert logged >= 200
    assert [p.value for p in history] == [s * 0.5 for s in steps]
    assert run.metrics == {"m": steps[-1] * 0.5}


@pytest.mark.slow
def test_ctrl_c_ends_run_killed_with_everything_logged(tmp_path: Path) -> None:
    run_id, logged, _sent, rc, err = _signal_after_ready(tmp_path, signal.SIGINT)
    assert "KeyboardInterrupt" in err
    assert rc != 0
    run = mlops.Workspace.open(tmp_path / "ws").get_run(run_id)
    assert run.status is RunStatus.KILLED
    assert run.error and "KeyboardInterrupt" in run.error
    steps = [p.step for p in run.metric_history("m")]
    _assert_contiguous(steps)
    assert logged <= len(steps) <= logged + 1


@pytest.mark.slow
def test_sigterm_without_with_block_ends_fluent_run_killed(tmp_path: Path) -> None:
    """A module-level run (no ``with``) is ended KILLED by the at-exit hook after SIGTERM."""
    script = _script(
        tmp_path,
        """
    import sys, time
    import mlops_sdk as mlops
    from mlops_sdk.fluent import set_workspace
    set_workspace(mlops.Workspace.open(sys.argv[1]))
    run = mlops.start_run("fluent-term")
    print(run.id, flush=True)
    for i in range(3000):
        mlops.log_metric("m", float(i))
    print("ready", flush=True)
    time.sleep(60)
    """,
    )
    proc = _spawn(script, tmp_path / "ws")
    run_id = _read_line(proc)
    assert _read_line(proc) == "ready"
    os.kill(proc.pid, signal.SIGTERM)
    _out, err = _finish(proc)
    assert proc.returncode == 143, err
    run = mlops.Workspace.open(tmp_path / "ws").get_run(run_id)
    assert run.status is RunStatus.KILLED
    assert [p.step for p in run.metric_history("m")] == list(range(3000))


def _run_to_end(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess[str], mlops.Run]:
    ws_root = tmp_path / "ws"
    ws_root.mkdir()
    script = _script(tmp_path, body)
    proc = subprocess.run(
        [sys.executable, str(script), str(ws_root)],
        cwd=ws_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, _only_run(ws_root)


def test_exception_inside_with_block_fails_run_with_error_and_keeps_metrics(tmp_path: Path) -> None:
    proc, run = _run_to_end(
        tmp_path,
        HEADER
        + """
    with exp.start_run(name="boom") as run:
        for i in range(2500):
            run.log_metric("loss", 1.0 / (i + 1))
        run.log_param("lr", 0.1)
        raise ValueError("exploded at step 2499")
    """,
    )
    assert proc.returncode == 1
    assert "ValueError: exploded at step 2499" in proc.stderr
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert "ValueError" in run.error and "exploded at step 2499" in run.error
    history = run.metric_history("loss")
    assert [p.step for p in history] == list(range(2500))
    assert [p.value for p in history] == [1.0 / (i + 1) for i in range(2500)]
    assert run.params == {"lr": 0.1}


def test_normal_exit_without_end_finishes_fluent_run(tmp_path: Path) -> None:
    proc, run = _run_to_end(
        tmp_path,
        """
    import sys
    import mlops_sdk as mlops
    from mlops_sdk.fluent import set_workspace
    set_workspace(mlops.Workspace.open(sys.argv[1]))
    mlops.start_run("no-end", params={"n": 3})
    for i in range(4000):
        mlops.log_metric("acc", i / 4000)
    mlops.set_tag("phase", "done")
    # no end_run(): the interpreter exits with points still queued
    """,
    )
    assert proc.returncode == 0, proc.stderr
    assert run.status is RunStatus.FINISHED
    assert run.end_time is not None
    assert run.error is None
    assert [p.step for p in run.metric_history("acc")] == list(range(4000))
    assert run.metrics == {"acc": 3999 / 4000}
    assert run.params == {"n": 3}
    assert run.tags.get("phase") == "done"


def test_normal_exit_uses_default_workspace_from_cwd(tmp_path: Path) -> None:
    """``mlops.start_run()`` with no configuration logs into ./.mlops of the current folder."""
    proc, run = _run_to_end(
        tmp_path,
        """
    import mlops_sdk as mlops
    mlops.start_run()
    for i in range(1000):
        mlops.log_metric("m", i)
    """,
    )
    assert proc.returncode == 0, proc.stderr
    assert run.status is RunStatus.FINISHED
    assert len(run.metric_history("m")) == 1000


def test_uncaught_exception_at_top_level_fails_fluent_run(tmp_path: Path) -> None:
    proc, run = _run_to_end(
        tmp_path,
        """
    import sys
    import mlops_sdk as mlops
    from mlops_sdk.fluent import set_workspace
    set_workspace(mlops.Workspace.open(sys.argv[1]))
    mlops.start_run("top-level-error")
    for i in range(1500):
        mlops.log_metric("m", i)
    raise RuntimeError("no with block here")
    """,
    )
    assert proc.returncode == 1
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "no with block here" in run.error
    assert [p.step for p in run.metric_history("m")] == list(range(1500))


FLUENT_THEN_SLEEP = """
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import mlops_sdk as mlops
    from mlops_sdk.fluent import set_workspace
    set_workspace(mlops.Workspace.open(sys.argv[1]))
    run = mlops.start_run("fluent")
    print(run.id, flush=True)
    for i in range(2000):
        mlops.log_metric("m", float(i))
    {end}
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.mark.slow
def test_ctrl_c_without_with_block_ends_fluent_run_killed(tmp_path: Path) -> None:
    proc = _spawn(_script(tmp_path, FLUENT_THEN_SLEEP.replace("{end}", "")), tmp_path / "ws")
    run_id = _read_line(proc)
    assert _read_line(proc) == "ready"
    os.kill(proc.pid, signal.SIGINT)
    _out, err = _finish(proc)
    assert "KeyboardInterrupt" in err
    run = mlops.Workspace.open(tmp_path / "ws").get_run(run_id)
    assert run.status is RunStatus.KILLED
    assert [p.step for p in run.metric_history("m")] == list(range(2000))


@pytest.mark.slow
def test_sigterm_after_runs_ended_keeps_default_behaviour(tmp_path: Path) -> None:
    """With no run active, SIGTERM terminates the process as if mlops were not there."""
    proc = _spawn(
        _script(tmp_path, FLUENT_THEN_SLEEP.replace("{end}", "mlops.end_run()")), tmp_path / "ws"
    )
    run_id = _read_line(proc)
    assert _read_line(proc) == "ready"
    os.kill(proc.pid, signal.SIGTERM)
    _finish(proc)
    assert proc.returncode == -signal.SIGTERM
    run = mlops.Workspace.open(tmp_path / "ws").get_run(run_id)
    assert run.status is RunStatus.FINISHED
    assert len(run.metric_history("m")) == 2000
