"""Fixtures: a real ``mlflow server`` on 127.0.0.1, fresh stores on it, and only this plugin loaded.

The server is started once per test session (once per xdist worker) on a free
port, with a SQLite backend store in a temporary folder, and stopped at the
end. Tests that need it are skipped, with the reason, when the full ``mlflow``
distribution is not installed (``pip install 'mlops-sdk-mlflow[test]'``).
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from mlops_sdk.plugins import reset_plugin_manager

START_TIMEOUT = (
    240.0  # `mlflow server` migrates a new database and imports a lot: slow on a busy machine
)

# Emptied between tests that need a fresh store (the conformance suite). Only tracking
# tables: the server's own bookkeeping (jobs, workspaces, alembic) is left alone.
TRACKING_TABLES = (
    "latest_metrics",
    "metrics",
    "params",
    "tags",
    "input_tags",
    "inputs",
    "datasets",
    "experiment_tags",
    "runs",
    "experiments",
)

SLOW_CONFORMANCE = {
    # hypothesis tests that create hundreds of runs over HTTP
    "test_search_agrees_with_reference_evaluator",
    "test_order_by_limit_offset_agree_with_reference_order",
    "test_latest_metric_and_history_whatever_the_arrival_order",
}


def has_full_mlflow() -> bool:
    try:
        importlib.metadata.version("mlflow")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here and item.originalname in SLOW_CONFORMANCE:
            item.add_marker(pytest.mark.slow)


@attrs.frozen
class MlflowServer:
    url: str
    db: Path
    process: subprocess.Popen[bytes]

    @property
    def tracking_uri(self) -> str:
        """Our URI for this server."""
        return f"mlflow+{self.url}"

    def reset(self) -> None:
        """Delete every experiment and run.

        MLflow's Default experiment (id 0) is moved to the trash instead: the
        server re-creates it when it is missing, and the suite wants no experiments.
        """
        with sqlite3.connect(self.db, timeout=60) as conn:
            tables = {
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            for table in TRACKING_TABLES:
                if table == "experiments":
                    conn.execute("DELETE FROM experiments WHERE experiment_id != 0")
                    conn.execute(
                        "UPDATE experiments SET lifecycle_stage = 'deleted' WHERE experiment_id = 0"
                    )
                elif table in tables:
                    conn.execute(f"DELETE FROM {table}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    if not has_full_mlflow():
        pytest.skip(
            "the full `mlflow` distribution is not installed: pip install 'mlops-sdk-mlflow[test]'"
        )
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = folder / "mlflow.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no background job workers: starts faster
    log = (folder / "server.log").open("wb")
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{db}",
        "--default-artifact-root", "mlflow-artifacts:/",
        "--artifacts-destination", str(folder / "artifacts"),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(url):
            if process.poll() is not None:
                pytest.fail(
                    f"mlflow server exited with {process.returncode}:\n{_tail(folder / 'server.log')}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server did not answer /health in {START_TIMEOUT:.0f} s:\n{_tail(folder / 'server.log')}"
                )
            time.sleep(0.2)
        yield MlflowServer(url, db, process)
    finally:
        _stop(process)
        log.close()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and whatever it started (it leads its own process group)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass


@pytest.fixture(autouse=True)
def _this_plugin_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Load the built-ins and this plugin (through its entry point), nothing else installed."""
    monkeypatch.setenv("MLOPS_PLUGINS", "mlflow")
    for key in ("TRACKING", "STORAGE", "COMPUTE", "DEPLOY", "FLUSH_INTERVAL"):
        monkeypatch.delenv(f"MLOPS_{key}", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    reset_plugin_manager()
    yield
    from mlops_sdk.fluent import set_workspace
    from mlops_sdk.run import active_runs

    for run in reversed(active_runs()):
        run.end("KILLED")
    set_workspace(None)
    reset_plugin_manager()


@pytest.fixture
def server(mlflow_server: MlflowServer) -> MlflowServer:
    """The session's server, as it is (tests use unique experiment names)."""
    return mlflow_server


@pytest.fixture
def empty_server(mlflow_server: MlflowServer) -> MlflowServer:
    """The session's server with every experiment and run deleted."""
    mlflow_server.reset()
    return mlflow_server
