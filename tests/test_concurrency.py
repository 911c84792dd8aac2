"""Many writers, one workspace (DESIGN.md §5): no lost data, no "database is locked".

Real processes writing into one real SQLite file at the same time, and
threads of one process writing into separate runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import mlops_sdk as mlops
from mlops_sdk.records import RunStatus

PROCESSES = 8
POINTS = 5_000

CHILD = """
import sys, time
from pathlib import Path
import mlops_sdk as mlops

root, index, go = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
while not go.exists():        # start all writers at the same moment
    time.sleep(0.005)
ws = mlops.Workspace.open(root)   # the first opens create the schema, concurrently
exp = ws.experiment("shared")
with exp.start_run(name=f"proc-{index}", params={"index": index}) as run:
    for i in range({points}):
        run.log_metric("value", index * 1_000_000 + i, step=i)
        if i % 10 == 0:
            time.sleep(0.002)       # spread the writes so the transactions interleave
        if i % 1000 == 0:
            run.log_metric("progress", i / {points})
            run.set_tag("last_thousand", str(i))
            run.refresh()           # a flush and a read while the others write
print(run.id)
"""


@pytest.mark.slow
def test_many_processes_log_into_one_sqlite_file(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(CHILD.replace("{points}", str(POINTS))))
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(root), str(k), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # many small transactions per writer: the most contention on the write lock
            env={**os.environ, "MLOPS_FLUSH_INTERVAL": "0.02"},
        )
        for k in range(PROCESSES)
    ]
    time.sleep(0.5)
    go.touch()
    results = [p.communicate(timeout=240) for p in procs]
    for k, (p, (out, err)) in enumerate(zip(procs, results, strict=True)):
        assert "database is locked" not in err.lower(), f"writer {k}: {err}"
        assert p.returncode == 0, f"writer {k} exited {p.returncode}: {err}"
        assert err.strip() == "", f"writer {k} wrote to stderr: {err}"
        assert out.strip(), f"writer {k} printed no run id"

    ws = mlops.Workspace.open(root)
    exp = ws.get_experiment("shared")  # created once, not once per process
    assert len(ws.experiments()) == 1
    runs = exp.runs()
    assert sorted(r.name for r in runs) == sorted(f"proc-{k}" for k in range(PROCESSES))
    assert {r.id for r in runs} == {out.strip() for out, _ in results}
    for run in runs:
        k = run.params["index"]
        assert run.status is RunStatus.FINISHED
        history = run.metric_history("value")
        assert len(history) == POINTS, f"{run.name}: {len(history)} of {POINTS} points"
        assert [m.step for m in history] == list(range(POINTS))
        assert [m.value for m in history] == [float(k * 1_000_000 + i) for i in range(POINTS)]
        assert run.metrics["value"] == float(k * 1_000_000 + POINTS - 1)
        assert len(run.metric_history("progress")) == POINTS // 1000
        assert run.tags["last_thousand"] == str(POINTS - 1000)
    assert exp.count_runs("metrics.value >= 0") == PROCESSES
    ws.close()


def test_threads_log_into_separate_runs_of_one_workspace(workspace: mlops.Workspace) -> None:
    exp = workspace.experiment("threads")
    threads_n, points = 6, 3_000
    errors: list[BaseException] = []
    run_ids: dict[int, str] = {}
    barrier = threading.Barrier(threads_n)

    def work(k: int) -> None:
        try:
            barrier.wait()
            with exp.start_run(name=f"thread-{k}", params={"k": k}) as run:
                run_ids[k] = run.id
                for i in range(points):
                    run.log_metric("loss", k + i / points)  # auto step
                    if i % 500 == 0:
                        run.log_metrics({"a": float(i), "b": float(-i)}, step=i)
                run.set_tag("done", "yes")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(run_ids) == threads_n

    for k, run_id in run_ids.items():
        run = workspace.get_run(run_id)
        assert run.status is RunStatus.FINISHED
        assert run.params == {"k": k}
        assert run.tags["done"] == "yes"
        history = run.metric_history("loss")
        assert [m.step for m in history] == list(range(points))
        assert [m.value for m in history] == [k + i / points for i in range(points)]
        assert [m.step for m in run.metric_history("a")] == list(range(0, points, 500))
        assert run.metrics["b"] == -float(max(range(0, points, 500)))
    assert workspace.experiment("threads").count_runs() == threads_n


def test_two_workspaces_of_one_file_in_one_process(tmp_path: Path) -> None:
    """Two ``Workspace`` objects on one file (two writers, two engines) do not lose data."""
    ws1 = mlops.Workspace.open(tmp_path)
    ws2 = mlops.Workspace.open(tmp_path)
    r1 = ws1.experiment("e").start_run(name="one")
    r2 = ws2.experiment("e").start_run(name="two")
    for i in range(2000):
        r1.log_metric("m", i)
        r2.log_metric("m", -i)
    r1.end()
    r2.end()
    for ws, run, sign in ((ws2, r1, 1), (ws1, r2, -1)):
        history = ws.get_run(run.id).metric_history("m")
        assert [m.value for m in history] == [float(sign * i) for i in range(2000)]
    ws1.close()
    ws2.close()
