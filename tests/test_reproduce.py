"""``mlops runs reproduce``: a real git repository, real training subprocesses, real sklearn.

One module-scoped repository holds a seeded iris training script; it is run as
a subprocess (so the runs record their command and commit), then the code is
changed and committed, and the original runs are reproduced from the old
commit in a temporary worktree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _gitrepo import clean_env, git
from click.testing import CliRunner

import mlops_sdk as mlops
from mlops_sdk.cli import cli
from mlops_sdk.errors import InvalidValue, NotReproducible, RunNotFound
from mlops_sdk.reproduce import TAG_REPRODUCES, compare_metrics, dataset_path, plan, reproduce

pytest.importorskip("sklearn")

TRAIN = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    import mlops_sdk as mlops
    from mlops_sdk.reproduce import dataset_path

    C = {C}
    ws = mlops.Workspace.open()
    data_dir = dataset_path("iris", default="data")
    dsv = ws.dataset("iris").add(data_dir)
    table = np.loadtxt(os.path.join(data_dir, "iris.csv"), delimiter=",")
    X, y = table[:, :4], table[:, 4].astype(int)
    with ws.experiment("iris").start_run(name="logreg", params={{"C": C}}) as run:
        run.use_dataset(dsv)
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
        clf = LogisticRegression(C=C, max_iter=1000).fit(Xtr, ytr)
        score = float(clf.score(Xte, yte))
        if "--noise" in sys.argv:  # nondeterministic: unseeded noise
            score += float(np.random.default_rng().normal(0, 0.01))
        run.log_metrics({{"accuracy": score, "coef_sum": float(clf.coef_.sum())}})
    print("run", run.id)
    """
)

SLOW = textwrap.dedent(
    """
    import os, time
    import mlops_sdk as mlops

    ws = mlops.Workspace.open()
    with ws.experiment("slow").start_run(name="slow") as run:
        run.log_metric("x", 1.0)
        if os.environ.get("MLOPS_REPRODUCES"):
            time.sleep(60)
    """
)


def _run_script(repo: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, *args], cwd=repo, env=clean_env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.split("run ")[-1].strip() if "run " in out.stdout else ""


class Project:
    def __init__(self, repo: Path, commit1: str, seeded: str, noisy: str, dirty: str, slow: str) -> None:
        self.repo = repo
        self.commit1 = commit1
        self.seeded = seeded
        self.noisy = noisy
        self.dirty = dirty
        self.slow = slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    from sklearn.datasets import load_iris

    repo = tmp_path_factory.mktemp("reproduce") / "proj"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitignore").write_text(".mlops/\ndata/\n")
    (repo / "train.py").write_text(TRAIN.format(C=1.0))
    (repo / "slow.py").write_text(SLOW)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "train v1")
    commit1 = git(repo, "rev-parse", "HEAD")
    iris = load_iris()
    (repo / "data").mkdir()
    rows = [",".join(f"{v:.1f}" for v in x) + f",{t}" for x, t in zip(iris.data, iris.target, strict=True)]
    (repo / "data" / "iris.csv").write_text("\n".join(rows) + "\n")

    seeded = _run_script(repo, "train.py")
    noisy = _run_script(repo, "train.py", "--noise")
    ws = mlops.Workspace.open(repo)
    ws.close()
    slow_out = subprocess.run(
        [sys.executable, "slow.py"], cwd=repo, env=clean_env(), capture_output=True, text=True, timeout=120, check=True
    )
    assert slow_out.returncode == 0
    # uncommitted change: a run from a dirty tree records the diff
    (repo / "train.py").write_text(TRAIN.format(C=0.2))
    dirty = _run_script(repo, "train.py")
    git(repo, "checkout", "--", "train.py")
    # the code moves on: a new commit changes the model, and the data folder is gone
    (repo / "train.py").write_text(TRAIN.format(C=0.01))
    git(repo, "commit", "-q", "-am", "train v2")
    (repo / "data" / "iris.csv").unlink()
    ws = mlops.Workspace.open(repo)
    slow = ws.experiment("slow").runs()[0].id
    ws.close()
    yield Project(repo, commit1, seeded, noisy, dirty, slow)


@pytest.fixture
def ws(project: Project) -> Iterator[mlops.Workspace]:
    workspace = mlops.Workspace.open(project.repo)
    yield workspace
    workspace.close()


def _cli(project: Project, *args: str) -> Any:
    return CliRunner().invoke(cli, ["-w", str(project.repo), "runs", "reproduce", *args], prog_name="mlops")


def _worktrees(repo: Path) -> int:
    return sum(1 for line in git(repo, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree "))


# -- reproducing ------------------------------------------------------------------------------
def test_seeded_run_reproduces_from_old_commit(project: Project, ws: mlops.Workspace) -> None:
    original = ws.get_run(project.seeded)
    assert original.context["git"]["commit"] == project.commit1
    assert original.params["C"] == 1.0

    result = _cli(project, project.seeded[:8])

    assert result.exit_code == 0, result.output
    assert "Reproduction plan" in result.output and "accuracy" in result.output
    assert "reproduced: run" in result.output
    new_runs = ws.runs(f"tags.`{TAG_REPRODUCES}` = '{project.seeded}'")
    assert len(new_runs) == 1
    new = new_runs[0]
    assert new.status == "FINISHED"
    assert new.params["C"] == 1.0  # the old code ran, not the current commit's C=0.01
    assert new.metrics == original.metrics
    assert new.context["git"]["commit"] == project.commit1
    assert [d.id for d in new.datasets()] == [d.id for d in original.datasets()]
    assert _worktrees(project.repo) == 1  # the temporary worktree is gone


def test_nondeterministic_run_reports_differences(project: Project) -> None:
    result = _cli(project, project.noisy, "--json")

    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["matched"] is False and data["new_run_id"]
    rows = {row["key"]: row for row in data["metrics"]}
    assert rows["accuracy"]["matched"] is False
    assert rows["accuracy"]["abs_diff"] > 0
    assert rows["coef_sum"]["matched"] is True  # the model itself is seeded
    assert data["problems"] == []


def test_dirty_run_gets_its_recorded_diff(project: Project, ws: mlops.Workspace) -> None:
    original = ws.get_run(project.dirty)
    assert original.context["git"]["dirty"] is True

    result = reproduce(ws, project.dirty, keep=True)

    try:
        assert result.plan.apply_diff
        assert result.matched, (result.problems, result.metrics, result.logs)
        assert ws.get_run(result.new_run_id or "").params["C"] == 0.2
        assert result.worktree is not None
        assert "C = 0.2" in (Path(result.worktree) / "train.py").read_text()
    finally:
        git(project.repo, "worktree", "remove", "--force", str(result.worktree))
        shutil.rmtree(Path(str(result.worktree)).parent, ignore_errors=True)


def test_dry_run_lists_the_plan_and_runs_nothing(project: Project, ws: mlops.Workspace) -> None:
    before = len(ws.runs())

    result = _cli(project, project.seeded, "--dry-run")

    assert result.exit_code == 0, result.output
    assert project.commit1 in result.output
    assert "train.py" in result.output and sys.executable in result.output
    assert "dataset iris" in result.output and ".mlops-datasets/iris" in result.output
    assert len(ws.runs()) == before
    p = plan(ws, project.seeded)
    assert p.command == [sys.executable, "train.py"] and p.cwd == "."
    assert p.datasets == [{"name": "iris", "version": 1, "id": ws.dataset("iris").version(1).id, "path": ".mlops-datasets/iris"}]


def test_timeout_stops_the_command_and_leaves_no_run_running(project: Project, ws: mlops.Workspace) -> None:
    started = time.monotonic()

    result = reproduce(ws, project.slow, timeout=2)

    assert time.monotonic() - started < 30
    assert result.timed_out and not result.matched
    assert result.new_run_id is not None
    assert ws.get_run(result.new_run_id).status == "KILLED"
    assert any("timeout" in p for p in result.problems)


# -- cannot be reproduced ---------------------------------------------------------------------
def _fake_run(ws: mlops.Workspace, context: dict[str, Any]) -> str:
    """A run stored with a given record (as another machine or an older version might write it)."""
    exp = ws.experiment("records")
    rid = os.urandom(16).hex()
    ws.tracking.create_run(exp.id, run_id=rid, name="r", start_time=time.time(), context=context)
    ws.tracking.end_run(rid, mlops.RunStatus.FINISHED, time.time())
    return rid


def test_unknown_run(project: Project, ws: mlops.Workspace) -> None:
    with pytest.raises(RunNotFound):
        reproduce(ws, "f" * 32)
    result = _cli(project, "ffffffffffff")
    assert result.exit_code == 1 and "no run" in result.output


def test_run_without_git_record(project: Project, ws: mlops.Workspace) -> None:
    rid = _fake_run(ws, {"command": {"argv": ["train.py"], "cwd": str(project.repo)}})
    with pytest.raises(NotReproducible, match="no git commit"):
        reproduce(ws, rid)
    result = _cli(project, rid)
    assert result.exit_code == 1 and "no git commit" in result.output


def test_commit_missing(project: Project, ws: mlops.Workspace) -> None:
    git_ctx = {"commit": "0123456789" * 4, "dirty": False, "root": str(project.repo)}
    rid = _fake_run(ws, {"git": git_ctx, "command": {"argv": ["train.py"], "cwd": str(project.repo)}})
    with pytest.raises(NotReproducible, match="not in the repository"):
        plan(ws, rid)


def test_notebook_and_missing_command(project: Project, ws: mlops.Workspace) -> None:
    git_ctx = {"commit": project.commit1, "dirty": False, "root": str(project.repo)}
    notebook = {"argv": ["/venv/lib/ipykernel_launcher.py", "-f", "kernel.json"], "cwd": str(project.repo)}
    with pytest.raises(NotReproducible, match="notebook"):
        plan(ws, _fake_run(ws, {"git": git_ctx, "command": notebook}))
    with pytest.raises(NotReproducible, match="no command line"):
        plan(ws, _fake_run(ws, {"git": git_ctx}))
    uncommitted = {"argv": ["not_committed.py"], "cwd": str(project.repo)}
    with pytest.raises(NotReproducible, match="was it committed"):
        plan(ws, _fake_run(ws, {"git": git_ctx, "command": uncommitted}))
    secret = {"argv": ["train.py", "--token", "***REDACTED***"], "cwd": str(project.repo)}
    with pytest.raises(NotReproducible, match="redacted"):
        plan(ws, _fake_run(ws, {"git": git_ctx, "command": secret}))


def test_dirty_run_without_diff_needs_allow_dirty(project: Project, ws: mlops.Workspace) -> None:
    git_ctx = {"commit": project.commit1, "dirty": True, "diff": "x" * 10, "diff_truncated": True, "root": str(project.repo)}
    rid = _fake_run(ws, {"git": git_ctx, "command": {"argv": ["train.py"], "cwd": str(project.repo)}})
    with pytest.raises(NotReproducible, match="allow_dirty"):
        plan(ws, rid)
    p = plan(ws, rid, allow_dirty=True)
    assert not p.apply_diff and any("clean commit" in w for w in p.warnings)


def test_pipeline_step_runs_use_the_pipeline_command(project: Project, ws: mlops.Workspace) -> None:
    import mlops_sdk.pipeline as pipeline_module

    exp = ws.experiment("records")
    git_ctx = {"commit": project.commit1, "dirty": False, "root": str(project.repo)}
    parent = _fake_run(ws, {"git": git_ctx, "command": {"argv": ["train.py"], "cwd": str(project.repo)}})
    rid = os.urandom(16).hex()
    tags = {"mlops.pipeline": "churn", "mlops.role": "step", "mlops.step": "fit"}
    ws.tracking.create_run(exp.id, run_id=rid, name="fit", start_time=time.time(), parent_id=parent, tags=tags, context={})
    ws.tracking.end_run(rid, mlops.RunStatus.FINISHED, time.time())
    force_env = getattr(pipeline_module, "FORCE_ENV", None)
    if force_env is None:
        with pytest.raises(NotReproducible, match="step 'fit' of pipeline 'churn'"):
            plan(ws, rid)
    else:
        p = plan(ws, rid)
        assert p.step == {"pipeline": "churn", "step": "fit"}
        assert p.command == [sys.executable, "train.py"] and p.env[force_env] == "1"


def test_bad_options(project: Project, ws: mlops.Workspace) -> None:
    with pytest.raises(InvalidValue):
        reproduce(ws, project.seeded, dry_run=True, tolerance=-1)
    with pytest.raises(InvalidValue):
        reproduce(ws, project.seeded, dry_run=True, timeout=0)
    with pytest.raises(InvalidValue, match="no dataset 'nope'"):
        plan(ws, project.seeded, datasets={"nope": "x"})
    assert _cli(project, project.seeded, "--dataset", "iris").exit_code == 2


# -- pure parts -------------------------------------------------------------------------------
def test_compare_metrics() -> None:
    rows = {r.key: r for r in compare_metrics(
        {"a": 1.0, "b": 2.0, "nan": float("nan"), "gone": 1.0, "zero": 0.0},
        {"a": 1.0 + 1e-9, "b": 2.1, "nan": float("nan"), "new": 3.0, "zero": 0.0},
    )}
    assert rows["a"].matched and rows["nan"].matched and rows["zero"].matched
    assert not rows["b"].matched and rows["b"].rel_diff == pytest.approx(0.05)
    assert not rows["gone"].matched and rows["gone"].new is None
    assert not rows["new"].matched and rows["new"].original is None
    assert compare_metrics({"b": 2.0}, {"b": 2.1}, tolerance=0.1)[0].matched


def test_dataset_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_REPRODUCE_DATASETS", raising=False)
    assert dataset_path("iris", default="data") == "data"
    assert dataset_path("iris") is None
    monkeypatch.setenv("MLOPS_REPRODUCE_DATASETS", json.dumps({"iris": "/w/.mlops-datasets/iris"}))
    assert dataset_path("iris", default="data") == "/w/.mlops-datasets/iris"
