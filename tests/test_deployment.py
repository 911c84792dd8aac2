"""Local deployments: bad input, a failed update keeping the old version, alias following, the CLI.

Real servers on 127.0.0.1 (router + ``mlops serve`` processes), stopped at the end of each test.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("sklearn")

import pandas as pd
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import mlops_sdk as mlops
from mlops_sdk.cli import cli
from mlops_sdk.deploy.local import pid_alive
from mlops_sdk.errors import (
    DeploymentError,
    DeploymentNotFound,
    InvalidName,
    InvalidValue,
    PortInUse,
)


class Identity:
    """A model saved with pickle: the server refuses to load it, so it never becomes healthy."""

    def predict(self, X: Any) -> Any:
        return X


@pytest.fixture()
def setup(tmp_path: Path) -> Iterator[tuple[mlops.Workspace, Any, Any, pd.DataFrame]]:
    ws = mlops.Workspace.open(tmp_path)
    X, y = load_iris(return_X_y=True, as_frame=True)
    (tmp_path / "data").mkdir()
    X.to_csv(tmp_path / "data" / "iris.csv", index=False)
    ws.dataset("iris").add(tmp_path / "data")
    with ws.experiment("dep").start_run() as run:
        mv1 = run.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris-clf", input_example=X[:5])
        mv2 = run.log_model(DecisionTreeClassifier(random_state=0).fit(X, y), "iris-clf", input_example=X[:5])
    yield ws, mv1, mv2, X
    for dep in ws.deployments():
        dep.stop()
    ws.close()


def test_unknown_and_bad_names_are_typed_errors(tmp_path: Path) -> None:
    ws = mlops.Workspace.open(tmp_path)
    with pytest.raises(DeploymentNotFound, match="no deployment named 'nope'"):
        ws.get_deployment("nope")
    with pytest.raises(InvalidName):
        ws.get_deployment("../etc")
    with pytest.raises(InvalidValue):
        ws.deploy("no-at-sign", name="x")
    assert ws.deployments() == []
    result = CliRunner().invoke(cli, ["--workspace", str(tmp_path), "deploy", "status", "nope"])
    assert result.exit_code == 1 and "no deployment named 'nope'" in result.output
    ws.close()


def test_port_in_use_and_failed_update(setup: Any) -> None:
    ws, mv1, _mv2, X = setup
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=str(port)):
            ws.deploy(mv1, name="api", config={"port": port})
    assert not (ws.root / ".mlops" / "deployments" / "api.json").exists()

    dep = ws.deploy(mv1, name="api", target="local", config={"log_sample_rate": 1.0})
    url, pids = dep.url, dep.deployer.pids("api")
    with pytest.raises(DeploymentError, match="already exists"):
        ws.deploy(mv1, name="api")
    with ws.experiment("dep").start_run() as run:
        broken = run.log_model(Identity(), "iris-clf", flavor="pyfunc", allow_pickle=True, input_example=X[:5])
    with pytest.raises(DeploymentError, match=f"iris-clf@{broken.version} failed to start"):
        dep.update(broken)
    # the old version keeps serving at the same URL, with the same processes
    assert dep.status == "running" and dep.url == url and dep.version == 1
    assert dep.deployer.pids("api") == pids
    assert dep.predict(X.iloc[:2]) == mv1.predict(X.iloc[:2]).tolist()
    with pytest.raises(DeploymentError, match="HTTP 422"):
        dep.predict([{"bogus": 1.0}])
    assert dep.predict(X.iloc[:1].to_dict(orient="records")) == mv1.predict(X.iloc[:1]).tolist()
    with pytest.raises(DeploymentError, match="no previous version"):
        dep.rollback()
    dep.stop()
    dep.stop()  # idempotent
    assert dep.status == "stopped" and not [p for p in pids if pid_alive(p)]
    assert len(dep.inference_log()) == 3  # flushed on shutdown
    with pytest.raises(DeploymentError, match="not running"):
        dep.update(mv1)


def test_cli_follows_alias_and_monitors(setup: Any, tmp_path: Path) -> None:
    ws, mv1, mv2, X = setup
    mv1.set_alias("production")
    runner = CliRunner()
    base = ["--workspace", str(tmp_path), "deploy"]

    def run(*args: str) -> Any:
        result = runner.invoke(cli, [*base, *args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    info = run("local", "iris-clf@production", "--name", "prod")
    assert info["version"] == 1 and info["alias"] == "production" and info["status"] == "running"
    assert info["url"].startswith("http://127.0.0.1:")
    pids = {info["pid"], info["router_pid"]}
    mv2.set_alias("production")
    info = run("update", "prod")  # no REF: follow the alias
    assert info["version"] == 2 and info["previous_versions"] == [1]
    pids |= {info["pid"]}
    info = run("rollback", "prod")
    assert info["version"] == 1 and info["previous_versions"] == []
    pids |= {info["pid"]}
    assert [d["name"] for d in run("ls")] == ["prod"]
    assert run("status", "prod")["status"] == "running"

    dep = ws.get_deployment("prod")
    dep.predict(X)
    # the log may still be in the server's buffer: stop flushes it, then monitoring sees every row
    assert run("stop", "prod")["status"] == "stopped"
    assert not [p for p in pids if pid_alive(p)]
    assert len(dep.inference_log()) == len(X)
    calm = runner.invoke(cli, ["--workspace", str(tmp_path), "monitor", "prod", "--reference", "iris@1",
                               "--fail-on", "drift", "--json"])
    assert calm.exit_code == 0, calm.output
    assert json.loads(calm.stdout)["failed"] is False
