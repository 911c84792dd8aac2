"""Child processes for ``tests/test_load_fault.py``, and the values they log.

Run as ``python tests/_writers.py MODE TRACKING_URI ROOT INDEX [...]``. Every
value a child logs is a pure function of its writer index, so the parent test
can check each stored point, param and artifact byte for byte. A child talks
to the parent through stdout lines (``ready``, the run id, ``logged N``);
anything on stderr is a failure.

Modes:

``load INDEX GO POINTS``
    Print ``ready``, wait for the file GO, open the workspace, log POINTS
    metric points over :data:`KEYS` (one step per key round), 50 params, 5
    artifacts (spread through the run), end the run FINISHED, print its id.
``stream INDEX STOP``
    Log one point of ``m`` per millisecond (explicit steps), a param every
    100 points, a text artifact every 1,000, until the file STOP exists; print
    ``logged N``, end the run, print ``ended``. Used across a database restart.
``kill INDEX``
    Log one point of ``m`` per millisecond until killed (SIGKILL test).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KEYS = ("loss", "accuracy", "lr", "grad_norm")
N_PARAMS = 50
N_ARTIFACTS = 5
LOAD_EXPERIMENT = "load"


# -- the values, shared by child and parent ------------------------------------------
def metric_value(index: int, key_no: int, step: int) -> float:
    """A float that names its writer, key and step (exact in binary: halves only)."""
    return index * 1_000_000.0 + key_no * 100_000.0 + step * 0.5


def stream_value(index: int, step: int) -> float:
    return index * 10_000_000.0 + step * 0.25


def params(index: int) -> dict[str, Any]:
    """50 params of every JSON-able kind: int, float, str, bool."""
    out: dict[str, Any] = {}
    for j in range(N_PARAMS):
        kind = j % 4
        key = f"p{j:02d}"
        if kind == 0:
            out[key] = index * 1000 + j
        elif kind == 1:
            out[key] = j / 8 + index
        elif kind == 2:
            out[key] = f"writer-{index}-value-{j}-é"
        else:
            out[key] = (index + j) % 2 == 0
    return out


def artifact_path(j: int) -> str:
    return f"a{j}.bin" if j == 0 else f"files/sub{j % 2}/a{j}.bin"


def artifact_bytes(index: int, j: int) -> bytes:
    return f"writer {index} artifact {j}\n".encode() * (20 * (j + 1)) + bytes(range(256)) * j


def artifacts(index: int) -> dict[str, bytes]:
    return {artifact_path(j): artifact_bytes(index, j) for j in range(N_ARTIFACTS)}


def stream_param(step: int) -> int:
    return step * 3


def stream_artifact(index: int, step: int) -> str:
    return f"writer {index} at step {step}\n"


# -- the children -----------------------------------------------------------------------
def _wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.005)


def _log_artifact(run: Any, scratch: Path, index: int, j: int) -> None:
    rel = artifact_path(j)
    local = scratch / f"w{index}-{j}" / Path(rel).name
    local.parent.mkdir(parents=True)
    local.write_bytes(artifact_bytes(index, j))
    parent = str(Path(rel).parent)
    run.log_artifact(local, None if parent == "." else parent)


def load(uri: str, root: Path, index: int, go: Path, points: int) -> None:
    import mlops_sdk as mlops

    print("ready", flush=True)
    _wait_for(go)
    ws = mlops.Workspace.open(root, tracking=uri)
    steps = points // len(KEYS)
    every = max(steps // N_ARTIFACTS, 1)
    with (
        tempfile.TemporaryDirectory() as tmp,
        ws.experiment(LOAD_EXPERIMENT).start_run(name=f"load-{index}") as run,
    ):
        for key, value in params(index).items():
            run.log_param(key, value)
        run.set_tag("writer", str(index))
        done = 0
        for step in range(steps):
            for key_no, key in enumerate(KEYS):
                run.log_metric(key, metric_value(index, key_no, step), step=step)
            if step % every == every - 1 and done < N_ARTIFACTS:
                # a synchronous write among the queued ones
                _log_artifact(run, Path(tmp), index, done)
                done += 1
            if step % 10 == 0:
                time.sleep(0.002)  # a training loop, not a burst: the processes' batches interleave
        while done < N_ARTIFACTS:
            _log_artifact(run, Path(tmp), index, done)
            done += 1
    print(run.id, flush=True)
    ws.close()


def stream(uri: str, root: Path, index: int, stop: Path) -> None:
    import mlops_sdk as mlops

    ws = mlops.Workspace.open(root, tracking=uri)
    run = ws.experiment("stream").start_run(name=f"stream-{index}")
    print(run.id, flush=True)
    step = 0
    while True:
        run.log_metric("m", stream_value(index, step), step=step)
        if step % 1000 == 0:
            run.log_text(stream_artifact(index, step), f"text/{step}.txt")  # synchronous
        if step % 100 == 0:
            run.log_param(f"p{step // 100}", stream_param(step))
            run.set_tag("last", str(step))
            if stop.exists():
                break
        if step == 300:
            print("ready", flush=True)
        step += 1
        time.sleep(0.001)
    print(f"logged {step + 1}", flush=True)
    run.end()
    print("ended", flush=True)
    ws.close()


def kill(uri: str, root: Path, index: int) -> None:
    import mlops_sdk as mlops

    ws = mlops.Workspace.open(root, tracking=uri)
    run = ws.experiment("kill").start_run(name=f"kill-{index}")
    print(run.id, flush=True)
    step = 0
    while True:
        run.log_metric("m", stream_value(index, step), step=step)
        if step == 200:
            print("ready", flush=True)
        step += 1
        time.sleep(0.001)


def main(argv: list[str]) -> None:
    mode, uri, root, index = argv[0], argv[1], Path(argv[2]), int(argv[3])
    if mode == "load":
        load(uri, root, index, Path(argv[4]), int(argv[5]))
    elif mode == "stream":
        stream(uri, root, index, Path(argv[4]))
    elif mode == "kill":
        kill(uri, root, index)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
