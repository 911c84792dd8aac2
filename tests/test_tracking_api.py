"""The tracking API of DESIGN.md §2, end to end on a real SQLite workspace."""

from __future__ import annotations

import filecmp
import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

import mlops_sdk as mlops
from mlops_sdk.errors import (
    ArtifactNotFound,
    ExperimentNotFound,
    InvalidName,
    InvalidValue,
    ParamConflict,
    RunNotActive,
    RunNotFound,
)
from mlops_sdk.fluent import set_workspace
from mlops_sdk.records import RunStatus
from mlops_sdk.redact import REDACTED

# -- experiments and runs -------------------------------------------------------------


def test_experiment_is_get_or_create(workspace: mlops.Workspace) -> None:
    a = workspace.experiment("churn")
    b = workspace.experiment("churn")
    assert a.id == b.id and a == b
    assert workspace.get_experiment("churn").id == a.id
    assert [e.name for e in workspace.experiments()] == ["churn"]
    with pytest.raises(ExperimentNotFound):
        workspace.get_experiment("nope")


def test_start_run_context_manager_logs_everything(
    workspace: mlops.Workspace, tmp_path: Path
) -> None:
    exp = workspace.experiment("churn")
    with exp.start_run(name="rf", params={"n": 100}, tags={"team": "growth"}) as run:
        assert run.is_active
        assert run.status is RunStatus.RUNNING
        run.log_param("depth", 8)
        run.log_params({"criterion": "gini", "max_features": [1, 2]})
        run.log_metric("loss", 0.31, step=10)
        run.log_metrics({"acc": 0.9, "f1": 0.8}, step=10)
        run.set_tag("stage", "dev")
        run.set_tag("stage", "prod")  # tags change; last value wins
        run.set_tags({"a": "1"})
    assert not run.is_active
    assert run.status is RunStatus.FINISHED
    assert run.end_time is not None and run.end_time >= run.start_time

    # Read back through a second workspace object: it is all in the file.
    again = mlops.Workspace.open(tmp_path).get_run(run.id)
    assert again.name == "rf"
    assert again.experiment_id == exp.id
    assert again.status is RunStatus.FINISHED
    assert again.params == {"n": 100, "depth": 8, "criterion": "gini", "max_features": [1, 2]}
    assert again.metrics == {"loss": 0.31, "acc": 0.9, "f1": 0.8}
    assert again.tags == {"team": "growth", "stage": "prod", "a": "1"}
    acc = again.metric_history("acc")
    f1 = again.metric_history("f1")
    assert acc[0].step == f1[0].step == 10
    assert acc[0].timestamp == f1[0].timestamp  # log_metrics: one step, one time


def test_step_auto_increments_when_none(workspace: mlops.Workspace) -> None:
    with workspace.experiment("e").start_run() as run:
        for v in (1.0, 2.0, 3.0):
            run.log_metric("a", v)
        run.log_metric("a", 4.0, step=10)
        run.log_metric("a", 5.0)
        run.log_metric("b", 1.0)  # steps are counted per key
        run.log_metrics({"c": 1.0, "d": 2.0})
        run.log_metrics({"c": 3.0, "d": 4.0})
    assert [(m.step, m.value) for m in run.metric_history("a")] == [
        (0, 1.0),
        (1, 2.0),
        (2, 3.0),
        (10, 4.0),
        (11, 5.0),
    ]
    assert [m.step for m in run.metric_history("b")] == [0]
    assert [m.step for m in run.metric_history("c")] == [0, 1]
    assert [m.step for m in run.metric_history("d")] == [0, 1]


def test_metric_history_is_in_step_order_with_timestamps(workspace: mlops.Workspace) -> None:
    before = time.time()
    with workspace.experiment("e").start_run() as run:
        run.log_metric("loss", 0.5, step=5)
        run.log_metric("loss", 0.9, step=1)
        run.log_metric("loss", 0.7, step=3, timestamp=1_700_000_000.25)
        run.log_metric("loss", float("nan"), step=7)
    history = run.metric_history("loss")
    assert [m.step for m in history] == [1, 3, 5, 7]
    assert [m.value for m in history[:3]] == [0.9, 0.7, 0.5]
    assert history[3].value != history[3].value  # NaN stored as NaN
    assert all(m.key == "loss" for m in history)
    assert history[1].timestamp == 1_700_000_000.25
    assert before <= history[0].timestamp <= time.time()
    # latest value = highest step
    assert run.metrics["loss"] != run.metrics["loss"]
    assert run.metric_history("never-logged") == []
    with pytest.raises(RunNotFound):
        workspace.tracking.metric_history("no-such-run", "loss")


def test_param_conflict_leaves_store_unchanged(workspace: mlops.Workspace) -> None:
    with workspace.experiment("e").start_run(params={"lr": 0.1}) as run:
        run.log_param("lr", 0.1)  # same value: fine
        with pytest.raises(ParamConflict, match="lr"):
            run.log_param("lr", 0.2)
        with pytest.raises(ParamConflict):
            run.log_params({"new": 1, "lr": 0.3})  # all checked before any is logged
        run.log_param("other", "x")
    assert workspace.get_run(run.id).params == {"lr": 0.1, "other": "x"}


def test_logging_after_end_raises_run_not_active(
    workspace: mlops.Workspace, tmp_path: Path
) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    run = workspace.experiment("e").start_run()
    run.log_metric("m", 1.0)
    run.end()
    run.end()  # ending twice is a no-op
    for call in (
        lambda: run.log_metric("m", 2.0),
        lambda: run.log_metrics({"m": 2.0}),
        lambda: run.log_param("p", 1),
        lambda: run.log_params({"p": 1}),
        lambda: run.set_tag("t", "v"),
        lambda: run.log_artifact(f),
    ):
        with pytest.raises(RunNotActive):
            call()
    stored = workspace.get_run(run.id)
    assert stored.metrics == {"m": 1.0} and stored.params == {} and stored.tags == {}
    assert stored.artifacts() == []
    assert stored.status is RunStatus.FINISHED


def test_get_run_unknown_id(workspace: mlops.Workspace) -> None:
    with pytest.raises(RunNotFound, match="nope"):
        workspace.get_run("nope")
    with pytest.raises(InvalidValue):
        workspace.get_run(123)  # type: ignore[arg-type]


# -- querying -------------------------------------------------------------------------


def _populate(workspace: mlops.Workspace) -> list[tuple[str, int, float]]:
    exp = workspace.experiment("q")
    rows = [
        ("a", 100, 0.95),
        ("b", 100, 0.75),
        ("c", 200, 0.85),
        ("d", 100, 0.81),
        ("e", 100, 0.99),
        ("f", 50, 0.5),
    ]
    for name, n, acc in rows:
        with exp.start_run(
            name=name, params={"n": n}, tags={"kind": "even" if n % 100 == 0 else "odd"}
        ) as run:
            run.log_metric("acc", acc)
    with workspace.experiment("other").start_run(name="z", params={"n": 100}) as run:
        run.log_metric("acc", 0.999)
    return rows


def test_runs_filter_and_order_by(workspace: mlops.Workspace) -> None:
    _populate(workspace)
    exp = workspace.experiment("q")
    found = exp.runs(filter="metrics.acc > 0.8 and params.n = 100", order_by=["-metrics.acc"])
    assert [r.name for r in found] == ["e", "a", "d"]
    assert [r.name for r in exp.runs(order_by="metrics.acc")] == ["f", "b", "d", "c", "a", "e"]
    assert [r.name for r in exp.runs(filter="tags.kind = 'odd'")] == ["f"]
    assert [
        r.name for r in exp.runs(filter="params.n >= 200 or metrics.acc < 0.6", order_by="name")
    ] == ["c", "f"]
    assert exp.count_runs("params.n = 100") == 4
    # the workspace-wide query sees the other experiment too
    assert [r.name for r in workspace.runs("metrics.acc > 0.98", order_by=["-metrics.acc"])] == [
        "z",
        "e",
    ]
    assert [r.name for r in workspace.runs(experiments=["other"])] == ["z"]


def test_runs_pagination(workspace: mlops.Workspace) -> None:
    rows = _populate(workspace)
    exp = workspace.experiment("q")
    everything = [r.name for r in exp.runs(order_by=["-metrics.acc"])]
    assert everything == [name for name, _, _ in sorted(rows, key=lambda r: -r[2])]
    pages = [
        [r.name for r in exp.runs(order_by=["-metrics.acc"], limit=4, offset=o)] for o in (0, 4, 8)
    ]
    assert pages == [everything[:4], everything[4:], []]
    # newest first by default; stable across pages
    default = [r.name for r in exp.runs()]
    assert default == ["f", "e", "d", "c", "b", "a"]
    assert [r.name for r in exp.runs(limit=2, offset=1)] == default[1:3]
    assert [r.name for r in exp.runs(limit=0)] == []
    with pytest.raises(InvalidValue):
        exp.runs(limit=-1)
    with pytest.raises(InvalidValue):
        exp.runs(offset=-1)


# -- nesting and the module-level API ---------------------------------------------------


def test_nested_runs_and_children(workspace: mlops.Workspace) -> None:
    exp = workspace.experiment("sweep")
    with exp.start_run(name="parent") as parent:
        kids = []
        for i in range(3):
            with exp.start_run(name=f"trial-{i}", parent=parent) as child:
                child.log_metric("loss", i)
            kids.append(child.id)
        with exp.start_run(name="by-id", parent=parent.id) as by_id:
            pass
    with exp.start_run(name="unrelated"):
        pass
    assert workspace.get_run(kids[0]).parent_id == parent.id
    assert sorted(r.id for r in parent.children()) == sorted([*kids, by_id.id])
    assert list(workspace.get_run(kids[0]).children()) == []
    with pytest.raises(RunNotFound):
        exp.start_run(parent="no-such-run")


def test_module_level_runs(workspace: mlops.Workspace) -> None:
    set_workspace(workspace)
    assert mlops.active_run() is None
    with pytest.raises(RunNotActive):
        mlops.log_metric("x", 1.0)
    run = mlops.start_run("notebook", params={"lr": 0.01})
    assert mlops.active_run() is run
    mlops.log_metric("loss", 0.5)
    mlops.log_metric("loss", 0.4)
    mlops.log_metrics({"acc": 0.7})
    mlops.log_param("batch", 32)
    mlops.log_params({"epochs": 3})
    mlops.set_tag("who", "me")
    mlops.set_tags({"where": "here"})
    with pytest.raises(RunNotActive, match="still active"):
        mlops.start_run("second")
    child = mlops.start_run("child", nested=True)
    assert child.parent_id == run.id
    assert mlops.active_run() is child
    mlops.log_metric("inner", 1.0)
    mlops.end_run()
    assert mlops.active_run() is run
    mlops.end_run()
    assert mlops.active_run() is None
    mlops.end_run()  # nothing active: no-op
    with pytest.raises(RunNotActive):
        mlops.log_metric("loss", 0.3)

    stored = workspace.get_run(run.id)
    assert stored.status is RunStatus.FINISHED
    assert workspace.get_experiment("Default").id == stored.experiment_id
    assert stored.params == {"lr": 0.01, "batch": 32, "epochs": 3}
    assert stored.metrics == {"loss": 0.4, "acc": 0.7}
    assert [m.step for m in stored.metric_history("loss")] == [0, 1]
    assert stored.tags == {"who": "me", "where": "here"}
    assert workspace.get_run(child.id).metrics == {"inner": 1.0}


def test_module_level_experiment_from_env(
    workspace: mlops.Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_EXPERIMENT", "from-env")
    set_workspace(workspace)
    run = mlops.start_run()
    mlops.end_run("KILLED")
    assert workspace.get_experiment("from-env").id == run.experiment_id
    assert run.status is RunStatus.KILLED


def test_exception_in_with_block_records_failure(workspace: mlops.Workspace) -> None:
    with pytest.raises(KeyError), workspace.experiment("e").start_run() as run:
        run.log_metric("m", 1.0)
        raise KeyError("missing-column")
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "missing-column" in run.error
    assert run.metrics == {"m": 1.0}


# -- artifacts --------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_log_artifact_file_and_folder_round_trip(
    workspace: mlops.Workspace, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "plots" / "sub").mkdir(parents=True)
    (src / "plots" / "roc.png").write_bytes(bytes(range(256)) * 40)
    (src / "plots" / "sub" / "notes.txt").write_text("héllo\n")
    (src / "plots" / "empty.bin").write_bytes(b"")
    (src / "model.json").write_text(json.dumps({"k": 1}))

    with workspace.experiment("e").start_run() as run:
        file_entries = run.log_artifact(src / "model.json")
        folder_entries = run.log_artifact(src / "plots")
        run.log_artifact(src / "model.json", artifact_path="configs/final")
        run.log_text("some text", "notes/readme.md")
    assert [e.path for e in file_entries] == ["model.json"]
    assert sorted(e.path for e in folder_entries) == [
        "plots/empty.bin",
        "plots/roc.png",
        "plots/sub/notes.txt",
    ]
    stored = workspace.get_run(run.id)
    assert [e.path for e in stored.artifacts()] == [
        "configs/final/model.json",
        "model.json",
        "notes/readme.md",
        "plots/empty.bin",
        "plots/roc.png",
        "plots/sub/notes.txt",
    ]
    sizes = {e.path: e.size for e in stored.artifacts()}
    assert sizes["plots/roc.png"] == 256 * 40 and sizes["plots/empty.bin"] == 0

    assert stored.read_artifact("plots/roc.png") == (src / "plots" / "roc.png").read_bytes()
    assert stored.read_artifact("model.json") == (src / "model.json").read_bytes()
    assert stored.read_artifact("notes/readme.md") == b"some text"
    with pytest.raises(ArtifactNotFound):
        stored.read_artifact("plots")

    dest = stored.download_artifacts(tmp_path / "all")
    assert dest == tmp_path / "all"
    assert _tree(dest / "plots") == _tree(src / "plots")
    assert (dest / "configs" / "final" / "model.json").read_bytes() == (
        src / "model.json"
    ).read_bytes()
    cmp = filecmp.dircmp(src / "plots", dest / "plots")
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only

    only_plots = stored.download_artifacts(tmp_path / "some", path="plots/sub")
    assert _tree(only_plots) == {"plots/sub/notes.txt": "héllo\n".encode()}
    with pytest.raises(ArtifactNotFound):
        # "plot" is a prefix of "plots/…", not a folder
        stored.download_artifacts(tmp_path / "none", path="plot")


def test_log_artifact_refuses_link_outside_folder(
    workspace: mlops.Workspace, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("do not upload")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "ok.txt").write_text("fine")
    (folder / "inside-link.txt").symlink_to(folder / "ok.txt")  # inside: allowed
    (folder / "leak.txt").symlink_to(outside)
    with workspace.experiment("e").start_run() as run:
        with pytest.raises(InvalidValue, match="outside"):
            run.log_artifact(folder)
        assert run.artifacts() == []  # nothing of the folder was recorded
        (folder / "leak.txt").unlink()
        entries = run.log_artifact(folder)
    assert sorted(e.path for e in entries) == ["out/inside-link.txt", "out/ok.txt"]
    assert run.read_artifact("out/inside-link.txt") == b"fine"
    stored_blobs = [
        p.read_bytes() for p in (tmp_path / ".mlops" / "store").rglob("*") if p.is_file()
    ]
    assert b"do not upload" not in stored_blobs


def test_log_artifact_bad_input(workspace: mlops.Workspace, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "f.txt").write_text("x")
    with workspace.experiment("e").start_run() as run:
        with pytest.raises(ArtifactNotFound):
            run.log_artifact(tmp_path / "missing.txt")
        with pytest.raises(InvalidValue):
            run.log_artifact(tmp_path / "empty")
        for bad in ("../up", "/abs", "a//b"):
            with pytest.raises(InvalidName):
                run.log_artifact(tmp_path / "f.txt", artifact_path=bad)
        assert run.artifacts() == []


# -- context capture and secrets ----------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "feature-x")
    (repo / "train.py").write_text("print('v1')\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    monkeypatch.chdir(repo)
    return repo


def test_context_records_clean_git_checkout(git_repo: Path) -> None:
    ws = mlops.Workspace.open()
    assert ws.root == git_repo
    with ws.experiment("e").start_run() as run:
        pass
    git = ws.get_run(run.id).context["git"]
    assert git["commit"] == _git(git_repo, "rev-parse", "HEAD")
    assert git["branch"] == "feature-x"
    assert git["dirty"] is False  # the workspace's own .mlops/ files are untracked
    assert "diff" not in git
    assert Path(git["root"]).resolve() == git_repo.resolve()
    ws.close()


def test_context_records_dirty_diff(git_repo: Path) -> None:
    (git_repo / "train.py").write_text("print('v2 uncommitted')\n")
    ws = mlops.Workspace.open()
    with ws.experiment("e").start_run() as run:
        pass
    git = mlops.Workspace.open().get_run(run.id).context["git"]
    assert git["dirty"] is True
    assert git["commit"] == _git(git_repo, "rev-parse", "HEAD")
    assert "-print('v1')" in git["diff"] and "+print('v2 uncommitted')" in git["diff"]
    ws.close()


def test_context_outside_git(
    workspace: mlops.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    with workspace.experiment("e").start_run() as run:
        pass
    assert "git" not in workspace.get_run(run.id).context


def test_context_records_python_packages_and_command(
    workspace: mlops.Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", "--epochs", "3"])
    monkeypatch.chdir(tmp_path)
    with workspace.experiment("e").start_run() as run:
        pass
    ctx = workspace.get_run(run.id).context
    assert ctx["python"]["version"] == platform.python_version()
    assert ctx["python"]["executable"] == sys.executable
    assert ctx["platform"]["system"] == platform.system()
    assert ctx["packages"]["pluggy"] == version("pluggy")
    assert ctx["packages"]["mlops-sdk"] == version("mlops-sdk")
    assert ctx["command"]["argv"] == ["train.py", "--epochs", "3"]
    assert ctx["command"]["cwd"] == str(tmp_path)
    assert ctx["command"]["pid"] == os.getpid()
    assert ctx["workspace"]["tracking"] == workspace.tracking.uri


SECRET = "s3cr3t-Value-9d41c"


def _stored_bytes(root: Path) -> bytes:
    """Every byte the workspace wrote: SQLite file, its WAL, blobs."""
    return b"".join(p.read_bytes() for p in sorted((root / ".mlops").rglob("*")) if p.is_file())


def test_secrets_never_reach_the_run_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_API_TOKEN", SECRET)
    monkeypatch.setenv("CI_DEPLOY_PASSWORD", SECRET + "-2")
    monkeypatch.setenv("MLOPS_DB_URL", f"postgresql://alice:{SECRET}-3@db.example.com/x")
    monkeypatch.setattr(
        sys,
        "argv",
        ["train.py", "--password", SECRET + "-4", f"--api-token={SECRET}-5", "--lr", "0.1"],
    )
    ws = mlops.Workspace.open(tmp_path)
    with ws.experiment("e").start_run(params={"api_key": SECRET + "-6", "lr": 0.1}) as run:
        run.log_param("hf_token", SECRET + "-7")
        run.log_params({"dbPassword": SECRET + "-8"})
        run.log_metric("m", 1.0)
    ws.close()

    stored = mlops.Workspace.open(tmp_path).get_run(run.id)
    assert stored.params == {
        "api_key": REDACTED,
        "lr": 0.1,
        "hf_token": REDACTED,
        "dbPassword": REDACTED,
    }
    ctx = stored.context
    assert ctx["env"]["MLOPS_API_TOKEN"] == REDACTED
    assert ctx["env"]["CI_DEPLOY_PASSWORD"] == REDACTED
    assert "alice" in ctx["env"]["MLOPS_DB_URL"] and SECRET not in ctx["env"]["MLOPS_DB_URL"]
    assert ctx["command"]["argv"] == [
        "train.py",
        "--password",
        REDACTED,
        f"--api-token={REDACTED}",
        "--lr",
        "0.1",
    ]
    record = json.dumps(
        {"params": dict(stored.params), "tags": dict(stored.tags), "context": dict(stored.context)},
        default=str,
    )
    assert SECRET not in record
    # Not in the database file (or its WAL) either, in any form.
    assert SECRET.encode() not in _stored_bytes(tmp_path)


def test_secret_in_plugin_context_is_redacted(workspace: mlops.Workspace) -> None:
    from mlops_sdk.hookspecs import hookimpl
    from mlops_sdk.plugins import plugin_registered

    class Leaky:
        @hookimpl
        def mlops_run_context(self, experiment_name: str, run_name: str) -> dict[str, object]:
            return {"cloud": {"region": "eu", "access_key": SECRET, "nested": {"password": SECRET}}}

    with plugin_registered(Leaky(), "leaky"), workspace.experiment("e").start_run() as run:
        pass
    cloud = workspace.get_run(run.id).context["cloud"]
    assert cloud == {"region": "eu", "access_key": REDACTED, "nested": {"password": REDACTED}}
    assert SECRET.encode() not in _stored_bytes(workspace.root)


# -- notebook display ------------------------------------------------------------------


def test_repr_html(workspace: mlops.Workspace) -> None:
    exp = workspace.experiment("html<exp>")
    with exp.start_run(name="rf<deep>", params={"n": 5}) as run:
        run.log_metric("acc", 0.875)
        live_html = run._repr_html_()
    assert "<table" in live_html and "rf&lt;deep&gt;" in live_html
    for html in (
        workspace.get_run(run.id)._repr_html_(),
        exp.runs()._repr_html_(),
        exp._repr_html_(),
    ):
        assert html.startswith("<table") and html.endswith("</table>")
        assert "rf&lt;deep&gt;" in html
        assert "rf<deep>" not in html  # escaped, not markup
        assert "0.875" in html
    assert "html&lt;exp&gt;" in exp._repr_html_()
    assert "1 runs" in exp.runs()._repr_html_()
