"""Issue 6, done-when: the example pipeline end to end, as a user runs it (no Ray here).

A temporary git repository holds ``examples/pipeline_example.py`` (copied from
this checkout); it runs as a real ``python`` subprocess (so its runs record the
command and commit), runs again fully cached, then the code moves on in a new
commit and ``mlops runs reproduce`` (a real subprocess of the CLI) re-executes
the old commit's pipeline in a temporary worktree and compares a step's metrics.
Timings are printed (``pytest -s``), never asserted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _gitrepo import clean_env, git

import mlops_sdk as mlops

pytest.importorskip("sklearn")
pytest.importorskip("pandas")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pipeline_example.py"
SCRIPT = "examples/pipeline_example.py"
PIPE = "iris-pipeline"
STEPS = ["prepare", "train", "evaluate", "register"]

pytestmark = pytest.mark.slow  # four pipeline runs in fresh processes and two reproductions: ~25 s


def _mlops_cli() -> list[str]:
    exe = shutil.which("mlops") or str(Path(sys.executable).parent / "mlops")
    return [exe] if Path(exe).exists() else [sys.executable, "-m", "mlops_sdk.cli"]


def _run(repo: Path, cmd: list[str], *, check: bool = True) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=repo, env=clean_env(), capture_output=True, text=True, timeout=300, check=False)
    took = time.perf_counter() - t0
    if check:
        assert out.returncode == 0, f"{cmd} exited {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out, took


def _statuses(stdout: str) -> dict[str, tuple[str, str]]:
    """step → (status, run id) from the example's ``NAME STATUS RUN_ID`` lines."""
    found = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in STEPS:
            found[parts[0]] = (parts[1], parts[2])
    return found


@dataclass
class Project:
    repo: Path
    commit1: str
    first: dict[str, tuple[str, str]]
    second: dict[str, tuple[str, str]]
    after_two_runs: dict[str, Any]
    """What the workspace held right after the two runs (the reproduce tests add runs and model versions)."""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    repo = tmp_path_factory.mktemp("issue6") / "proj"
    (repo / "examples").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitignore").write_text(".mlops/\n")
    shutil.copy(EXAMPLE, repo / SCRIPT)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "pipeline v1")
    commit1 = git(repo, "rev-parse", "HEAD")

    out1, t1 = _run(repo, [sys.executable, SCRIPT])
    out2, t2 = _run(repo, [sys.executable, SCRIPT])
    print(f"\nexample pipeline, fresh process: first run {t1:.2f} s, fully cached re-run {t2:.2f} s")
    with mlops.Workspace.open(repo) as ws:
        pipeline_runs = ws.runs(f"tags.`mlops.pipeline` = '{PIPE}' and tags.`mlops.role` = 'pipeline'")
        state = {
            "pipeline_runs": [(r.id, dict(r.metrics)) for r in pipeline_runs],
            "step_runs": len(ws.runs(f"tags.`mlops.pipeline` = '{PIPE}' and tags.`mlops.role` = 'step'")),
            "model_versions": [v.version for v in ws.model("iris-clf").versions()],
            "running": len(ws.runs("attributes.status = 'RUNNING'")),
        }
    out, took = _run(repo, [*_mlops_cli(), "pipeline", "status", f"{SCRIPT}:pipe", "--json"])
    print(f"mlops pipeline status: {took:.2f} s")
    state["status"] = {s["name"]: s["state"] for s in json.loads(out.stdout)["steps"]}
    return Project(repo, commit1, _statuses(out1.stdout), _statuses(out2.stdout), state)


@pytest.fixture
def ws(project: Project) -> Iterator[mlops.Workspace]:
    workspace = mlops.Workspace.open(project.repo)
    yield workspace
    workspace.close()


def test_first_run_runs_every_step_and_registers_a_model(project: Project, ws: mlops.Workspace) -> None:
    assert {name: status for name, (status, _) in project.first.items()} == dict.fromkeys(STEPS, "ran")
    for name, (_, run_id) in project.first.items():
        run = ws.get_run(run_id)
        assert run.status == "FINISHED"
        assert run.tags["mlops.pipeline"] == PIPE and run.tags["mlops.step"] == name
        assert run.context["git"]["commit"] == project.commit1
    assert project.after_two_runs["model_versions"] == [1]
    mv = ws.model("iris-clf").version(1)
    assert mv.lineage().run is not None and mv.lineage().run.id == project.first["register"][1]
    assert mv.metrics["test_accuracy"] > 0.8
    assert [d.name for d in mv.lineage().datasets] == ["iris"]
    assert project.after_two_runs["running"] == 0


def test_second_run_is_fully_cached(project: Project, ws: mlops.Workspace) -> None:
    assert {name: status for name, (status, _) in project.second.items()} == dict.fromkeys(STEPS, "cached")
    # a cached step reuses the run that computed it
    assert {n: r for n, (_, r) in project.second.items()} == {n: r for n, (_, r) in project.first.items()}
    state = project.after_two_runs
    assert len(state["pipeline_runs"]) == 2
    newest_metrics = state["pipeline_runs"][0][1]
    assert newest_metrics["steps_cached"] == len(STEPS) and newest_metrics["steps_ran"] == 0
    assert state["step_runs"] == len(STEPS)  # the cached re-run started no step run
    assert state["model_versions"] == [1]
    assert state["status"] == dict.fromkeys(STEPS, "cached")  # mlops pipeline status --json agrees


def _move_code_on(project: Project) -> str:
    """Commit a change: the example's default C becomes 0.01 (so HEAD trains another model), plus a new file."""
    script = project.repo / SCRIPT
    text = script.read_text()
    if "C: float = 0.01" not in text:
        assert "C: float = 1.0" in text
        script.write_text(text.replace("C: float = 1.0", "C: float = 0.01"))
        (project.repo / "NOTES.md").write_text("regularise harder\n")
        git(project.repo, "add", ".")
        git(project.repo, "commit", "-q", "-m", "pipeline v2: C=0.01")
    return git(project.repo, "rev-parse", "HEAD")


def test_status_after_the_code_moved_on(project: Project) -> None:
    _move_code_on(project)

    out, _ = _run(project.repo, [*_mlops_cli(), "pipeline", "status", f"{SCRIPT}:pipe", "--json"])

    steps = {s["name"]: s for s in json.loads(out.stdout)["steps"]}
    assert {n: s["state"] for n, s in steps.items()} == {
        "prepare": "cached", "train": "stale", "evaluate": "stale", "register": "stale"}
    assert "params changed: C" in steps["train"]["reason"]  # (the default of C is in the code too)


def test_reproduce_evaluate_step_from_the_old_commit(project: Project, ws: mlops.Workspace) -> None:
    head = _move_code_on(project)
    assert head != project.commit1
    evaluate_id = project.first["evaluate"][1]
    original = ws.get_run(evaluate_id)

    out, took = _run(project.repo, [*_mlops_cli(), "runs", "reproduce", evaluate_id, "--json"], check=False)
    print(f"\nmlops runs reproduce (evaluate step): {took:.2f} s")

    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["matched"] is True and data["problems"] == []
    assert data["commit"] == project.commit1
    assert data["plan"]["step"] == {"pipeline": PIPE, "step": "evaluate"}
    assert {row["key"]: row["matched"] for row in data["metrics"]} == {"test_accuracy": True}
    new = ws.get_run(data["new_run_id"])
    assert new.id != evaluate_id and new.status == "FINISHED"
    assert new.tags["mlops.reproduces"] == evaluate_id
    assert new.tags["mlops.step"] == "evaluate" and new.metrics == original.metrics
    assert new.context["git"]["commit"] == project.commit1
    # the old code ran: its train step used C=1.0, not HEAD's 0.01
    train_input = json.loads(new.tags["mlops.step.inputs"])["train"]["run_id"]
    assert ws.get_run(train_input).params["C"] == 1.0
    assert list(ws.runs("attributes.status = 'RUNNING'")) == []
    assert git(project.repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_reproduce_train_step_text_output(project: Project, ws: mlops.Workspace) -> None:
    _move_code_on(project)
    train_id = project.first["train"][1]

    out, took = _run(project.repo, [*_mlops_cli(), "runs", "reproduce", train_id], check=False)
    print(f"\nmlops runs reproduce (train step): {took:.2f} s")

    assert out.returncode == 0, out.stdout + out.stderr
    assert "train_accuracy" in out.stdout
    assert f"matches run {train_id}" in out.stdout + out.stderr
    new = ws.runs(f"tags.`mlops.reproduces` = '{train_id}'")
    assert len(new) == 1 and new[0].metrics == ws.get_run(train_id).metrics
    assert new[0].params == {"C": 1.0, "max_iter": 1000}
