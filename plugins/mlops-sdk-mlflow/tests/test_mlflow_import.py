"""``mlops import-mlflow`` from a real MLflow store (SQLite, and a tracking server)."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import attrs
import click
import mlops_sdk as mlops
import pytest
from click.testing import CliRunner
from mlops_sdk.cli import add_plugin_commands, cli
from mlops_sdk.errors import ConfigError
from mlops_sdk.plugins import get_plugin_manager
from mlops_sdk.redact import REDACTED

T0 = 1_700_000_000_000  # ms


@attrs.frozen
class Source:
    uri: str
    ids: dict[str, str]  # run name -> MLflow run id


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Source:
    """A SQLite MLflow store written with MLflow's own client."""
    try:
        importlib.metadata.version(
            "mlflow"
        )  # the full distribution: mlflow-skinny cannot write SQLite
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            "the full `mlflow` distribution is not installed: pip install 'mlops-sdk-mlflow[test]'"
        )
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow-source")
    uri = f"sqlite:///{folder / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=uri)
    churn = client.create_experiment(
        "churn", artifact_location=(folder / "art").as_uri(), tags={"owner": "ana"}
    )
    other = client.create_experiment("other", artifact_location=(folder / "art2").as_uri())
    ids: dict[str, str] = {}

    parent = client.create_run(
        churn,
        start_time=T0,
        run_name="rf",
        tags={"team": "growth", "mlflow.source.git.commit": "abc123", "mlflow.user": "ana"},
    )
    ids["rf"] = parent.info.run_id
    loss = [Metric("loss", 1.0 / (s + 1), T0 + s * 10, s) for s in range(50)]
    loss[7] = Metric("loss", math.nan, T0 + 70, 7)
    client.log_batch(
        ids["rf"],
        metrics=[*loss, Metric("acc", 0.5, T0, 0), Metric("acc", 0.9, T0 + 500, 1)],
        params=[Param("n_estimators", "100"), Param("model", "rf"), Param("api_token", "s3cret")],
        tags=[RunTag("stage", "dev")],
    )
    client.set_terminated(ids["rf"], "FINISHED", end_time=T0 + 60_000)

    child = client.create_run(
        churn, start_time=T0 + 1000, run_name="fold-0", tags={"mlflow.parentRunId": ids["rf"]}
    )
    ids["fold-0"] = child.info.run_id
    client.log_metric(ids["fold-0"], "loss", 0.3, timestamp=T0 + 1500, step=0)
    client.set_terminated(ids["fold-0"], "FAILED", end_time=T0 + 2000)

    running = client.create_run(churn, start_time=T0 + 3000, run_name="still-running")
    ids["still-running"] = running.info.run_id

    deleted = client.create_run(churn, start_time=T0 + 4000, run_name="deleted")
    client.delete_run(deleted.info.run_id)

    lone = client.create_run(other, start_time=T0 + 5000, run_name="lone")
    ids["lone"] = lone.info.run_id
    client.log_param(ids["lone"], "x", "1")
    client.set_terminated(ids["lone"], "FINISHED", end_time=T0 + 6000)
    return Source(uri, ids)


def _invoke(*args: str) -> Any:
    if (
        "import-mlflow" not in cli.commands
    ):  # another test in this process may have added commands first
        add_plugin_commands(cli)
        if "import-mlflow" not in cli.commands:
            from mlops_sdk_mlflow.cli import import_mlflow_command

            cli.add_command(import_mlflow_command)
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_the_hook_adds_the_command() -> None:
    group = click.Group("mlops")
    add_plugin_commands(group)
    assert "import-mlflow" in group.commands
    assert "mlflow" in get_plugin_manager().infos


def test_import_copies_experiments_runs_and_histories(mlflow_store: Source, tmp_path: Path) -> None:
    result = _invoke("-w", str(tmp_path), "import-mlflow", mlflow_store.uri, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["runs_imported"], summary["runs_skipped"]) == (4, 0)
    assert summary["metric_points"] == 50 + 2 + 1
    imported = {e["name"]: e["runs_imported"] for e in summary["experiments"]}
    assert imported == {"Default": 0, "churn": 3, "other": 1}

    ws = mlops.Workspace.open(tmp_path)
    assert sorted(e.name for e in ws.experiments()) == [
        "churn",
        "other",
    ]  # empty ones are not created
    churn = ws.get_experiment("churn")
    assert churn.tags == {"owner": "ana"}
    runs = {r.name: r for r in churn.runs()}
    assert set(runs) == {"rf", "fold-0", "still-running"}  # the deleted run stays behind

    rf = runs["rf"]
    assert rf.status == "FINISHED"
    assert (rf.start_time, rf.end_time) == (T0 / 1000, (T0 + 60_000) / 1000)
    assert rf.params == {"n_estimators": "100", "model": "rf", "api_token": REDACTED}
    assert (
        rf.tags["team"] == "growth"
        and rf.tags["stage"] == "dev"
        and rf.tags["mlflow.user"] == "ana"
    )
    assert rf.tags["mlflow.source_run_id"] == mlflow_store.ids["rf"]
    assert "mlflow.runName" not in rf.tags
    history = rf.metric_history("loss")
    assert [m.step for m in history] == list(range(50))
    assert math.isnan(history[7].value) and history[49].value == 1.0 / 50
    assert [m.timestamp for m in history[:2]] == [T0 / 1000, (T0 + 10) / 1000]
    assert rf.metrics["acc"] == 0.9
    assert rf.context["git"] == {"commit": "abc123"}
    assert rf.context["mlflow"]["run_id"] == mlflow_store.ids["rf"]

    fold = runs["fold-0"]
    assert fold.status == "FAILED" and fold.parent_id == rf.id
    assert runs["still-running"].status == "RUNNING" and runs["still-running"].end_time is None
    (lone,) = ws.get_experiment("other").runs()
    assert lone.params == {"x": "1"}


def test_import_is_idempotent(mlflow_store: Source, tmp_path: Path) -> None:
    first = _invoke("-w", str(tmp_path), "import-mlflow", mlflow_store.uri, "--json")
    again = _invoke("-w", str(tmp_path), "import-mlflow", mlflow_store.uri, "--json")
    assert json.loads(first.stdout)["runs_imported"] == 4
    summary = json.loads(again.stdout)
    assert (summary["runs_imported"], summary["runs_skipped"], summary["metric_points"]) == (
        0,
        4,
        0,
    )
    ws = mlops.Workspace.open(tmp_path)
    assert len(ws.runs()) == 4
    assert len(ws.get_experiment("churn").runs(filter="name = 'rf'")) == 1


def test_import_selected_experiments_and_unknown_ones(mlflow_store: Source, tmp_path: Path) -> None:
    result = _invoke(
        "-w", str(tmp_path), "import-mlflow", mlflow_store.uri, "--experiment", "other"
    )
    assert result.exit_code == 0, result.output
    assert "1 runs imported" in result.stderr
    ws = mlops.Workspace.open(tmp_path)
    assert [e.name for e in ws.experiments()] == ["other"]
    ws.close()
    missing = _invoke("-w", str(tmp_path), "import-mlflow", mlflow_store.uri, "-e", "nope")
    assert missing.exit_code == 1
    assert "no experiment named 'nope'" in missing.stderr and "churn" in missing.stderr


def test_a_missing_sqlite_store_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    pytest.importorskip(
        "mlflow", reason="mlflow is not installed: pip install 'mlops-sdk-mlflow[test]'"
    )
    from mlops_sdk_mlflow.importer import import_mlflow

    ws = mlops.Workspace.open(tmp_path)
    with pytest.raises(ConfigError, match="no MLflow store"):
        import_mlflow(ws, f"sqlite:///{tmp_path / 'absent.db'}")
    assert not (tmp_path / "absent.db").exists()


def test_the_mlops_command_imports_from_a_tracking_server(server: Any, tmp_path: Path) -> None:
    """The real console path (``python -m mlops_sdk.cli``, plugins from entry points), from HTTP."""
    exp_name = f"served-{uuid.uuid4().hex[:8]}"
    # runs written by mlops-sdk on the server keep their typed params through an import
    with (
        mlops.Workspace.open(tmp_path / "origin", tracking=server.tracking_uri) as origin,
        origin.experiment(exp_name).start_run(
            name="typed", params={"n": 3, "flags": [True]}
        ) as run,
    ):
        run.log_metric("loss", 0.5, step=2)
    (tmp_path / "target").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env["MLOPS_PLUGINS"] = "mlflow"
    proc = subprocess.run(
        [sys.executable, "-m", "mlops_sdk.cli", "-w", str(tmp_path / "target"), "import-mlflow", server.url, "-e", exp_name, "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["runs_imported"] == 1
    with mlops.Workspace.open(tmp_path / "target") as ws:
        (imported,) = ws.get_experiment(exp_name).runs()
        assert imported.params == {"n": 3, "flags": [True]}
        assert imported.metrics == {"loss": 0.5} and imported.status == "FINISHED"
        assert imported.tags["mlflow.source_run_id"] == run.id
