"""The MLflow backend against a real ``mlflow server``: our API in, our API and MLflow's API out."""

from __future__ import annotations

import http.server
import json
import math
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlops_sdk as mlops
import pytest
from mlops_sdk.errors import BackendError, InvalidName, InvalidValue, RunNotFound
from mlops_sdk.records import WriteBatch
from mlops_sdk.tracking.base import TransientError

from mlops_sdk_mlflow.tracking import MlflowTrackingStore

NO_MLFLOW = "mlflow is not installed: pip install 'mlops-sdk-mlflow[test]'"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(server: Any) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=server.url)


@pytest.fixture
def ws(server: Any, tmp_path: Path) -> Iterator[mlops.Workspace]:
    workspace = mlops.Workspace.open(tmp_path, tracking=server.tracking_uri)
    yield workspace
    workspace.close()


def test_run_round_trips_through_the_server(
    ws: mlops.Workspace, client: Any, tmp_path: Path
) -> None:
    exp_name = _name("roundtrip")
    exp = ws.experiment(exp_name)
    params = {
        "n": 100,
        "lr": 0.1,
        "model": "rf",
        "flag": True,
        "layers": [64, 32],
        "cfg": {"a": 1},
        "none": None,
        "text_1": "1",
    }
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "roc.txt").write_text("roc")
    (tmp_path / "notes.txt").write_text("hello")
    with exp.start_run(name="train", params=params, tags={"team": "growth"}) as run:
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"acc": 0.9, "diverged": math.inf}, step=4)
        run.log_metric("nan", math.nan)
        run.log_param("depth", 8)
        run.set_tag("stage", "dev")
        run.log_artifact(tmp_path / "notes.txt")
        run.log_artifact(tmp_path / "plots")
        with exp.start_run(name="fold-0", parent=run) as child:
            child.log_metric("loss", 0.5)

    # -- our API ---------------------------------------------------------------------------
    got = ws.get_run(run.id)
    assert got.status == "FINISHED" and got.error is None
    assert got.name == "train"
    assert got.end_time is not None and got.end_time >= got.start_time
    assert got.params == {**params, "depth": 8}
    assert type(got.params["n"]) is int and type(got.params["text_1"]) is str
    assert (
        got.metrics["loss"] == 0.2
        and got.metrics["acc"] == 0.9
        and got.metrics["diverged"] == math.inf
    )
    assert math.isnan(got.metrics["nan"])
    assert got.tags == {"team": "growth", "stage": "dev"}
    assert [(m.step, m.value) for m in got.metric_history("loss")] == [
        (s, 1.0 / (s + 1)) for s in range(5)
    ]
    assert [a.path for a in got.artifacts()] == ["notes.txt", "plots/roc.txt"]
    assert got.read_artifact("plots/roc.txt") == b"roc"
    assert "python" in got.context and "packages" in got.context
    assert [c.id for c in got.children()] == [child.id]
    assert ws.get_run(child.id).parent_id == run.id
    found = exp.runs(filter="metrics.loss < 0.3 and params.n = 100 and tags.team = 'growth'")
    assert [r.id for r in found] == [run.id]

    # -- MLflow's API: what its UI shows ------------------------------------------------------
    m_exp = client.get_experiment_by_name(exp_name)
    assert m_exp is not None and m_exp.experiment_id == exp.id
    m_run = client.get_run(run.id)
    assert m_run.info.run_name == "train" and m_run.info.status == "FINISHED"
    assert m_run.info.start_time == round(got.start_time * 1000)
    assert m_run.info.end_time == round(got.end_time * 1000)
    assert m_run.data.params == {
        "n": "100",
        "lr": "0.1",
        "model": "rf",
        "flag": "true",
        "layers": "[64, 32]",
        "cfg": '{"a": 1}',
        "none": "null",
        "text_1": "1",
        "depth": "8",
    }
    assert m_run.data.metrics["loss"] == 0.2 and m_run.data.metrics["acc"] == 0.9
    tags = m_run.data.tags
    assert tags["team"] == "growth" and tags["stage"] == "dev" and tags["mlflow.runName"] == "train"
    assert tags["mlflow.source.type"] == "LOCAL"
    git = run.context.get("git") or {}
    if git.get("commit"):
        assert tags["mlflow.source.git.commit"] == git["commit"]
    assert client.get_run(child.id).data.tags["mlflow.parentRunId"] == run.id  # the UI nests it
    assert [(m.step, m.value) for m in client.get_metric_history(run.id, "loss")] == [
        (s, 1.0 / (s + 1)) for s in range(5)
    ]
    listed = sorted(f.path for f in client.list_artifacts(run.id, "mlops"))
    assert listed == ["mlops/artifacts.json", "mlops/context.json"]
    manifest = json.loads(
        Path(client.download_artifacts(run.id, "mlops/artifacts.json", str(tmp_path))).read_text()
    )
    assert [f["path"] for f in manifest["files"]] == ["notes.txt", "plots/roc.txt"]
    assert all(len(f["digest"]) == 64 and f["size"] > 0 for f in manifest["files"])


def test_failed_run_records_status_and_error(ws: mlops.Workspace, client: Any) -> None:
    exp = ws.experiment(_name("failing"))
    with pytest.raises(ValueError, match="boom"), exp.start_run(name="bad") as run:
        run.log_metric("loss", 1.0)
        raise ValueError("boom")
    got = ws.get_run(run.id)
    assert got.status == "FAILED" and "ValueError: boom" in (got.error or "")
    m_run = client.get_run(run.id)
    assert m_run.info.status == "FAILED"
    assert "ValueError: boom" in m_run.data.tags["mlops.error"]
    assert "mlops.error" not in got.tags


def test_runs_logged_with_mlflow_read_back(ws: mlops.Workspace, client: Any) -> None:
    from mlflow.entities import Metric, Param, RunTag

    name = _name("native")
    exp_id = client.create_experiment(name, tags={"owner": "ana"})
    parent = client.create_run(
        exp_id, run_name="parent", tags={"mlflow.source.git.commit": "abc123"}
    )
    child = client.create_run(
        exp_id, run_name="child", tags={"mlflow.parentRunId": parent.info.run_id}
    )
    client.log_batch(
        parent.info.run_id,
        metrics=[Metric("loss", 0.5, 1000, 0), Metric("loss", 0.25, 2000, 1)],
        params=[Param("n", "100"), Param("flag", "true")],
        tags=[RunTag("team", "core")],
    )
    client.set_terminated(parent.info.run_id, "KILLED")
    exp = ws.get_experiment(name)
    assert exp.tags == {"owner": "ana"}
    got = ws.get_run(parent.info.run_id)
    assert got.params == {"n": "100", "flag": "true"}  # MLflow's own params are text
    assert got.metrics == {"loss": 0.25} and got.status == "KILLED"
    assert got.tags == {"team": "core"}
    assert got.context == {"git": {"commit": "abc123"}}
    assert ws.get_run(child.info.run_id).parent_id == parent.info.run_id
    assert [r.name for r in exp.runs(filter="params.n > 50")] == [
        "parent"
    ]  # numeric reading of text


def test_default_order_pages_and_stops_early(ws: mlops.Workspace) -> None:
    exp = ws.experiment(_name("paging"))
    ids = []
    for i in range(5):
        with exp.start_run(name=f"r{i}") as run:
            run.log_metric("i", i)
        ids.append(run.id)
        time.sleep(0.002)  # distinct start milliseconds
    assert [r.id for r in exp.runs(limit=2)] == ids[::-1][:2]
    assert [r.id for r in exp.runs(limit=2, offset=2)] == ids[::-1][2:4]
    assert [r.id for r in exp.runs(order_by=["start_time"], limit=3)] == ids[:3]
    assert [
        r.id for r in exp.runs(filter="metrics.i >= 1 and metrics.i < 4", order_by=["-metrics.i"])
    ] == ids[3:0:-1]
    assert exp.count_runs(filter="metrics.i >= 3 or name = 'r0'") == 3


def test_unknown_run_is_run_not_found(ws: mlops.Workspace, server: Any) -> None:
    with pytest.raises(RunNotFound, match=r"127\.0\.0\.1"):
        ws.get_run(uuid.uuid4().hex)
    with pytest.raises(RunNotFound):
        ws.get_run("not a run id")


def test_refused_keys_and_values_fail_the_batch_before_anything_is_written(server: Any) -> None:
    store = MlflowTrackingStore(server.tracking_uri)
    exp = store.get_or_create_experiment(_name("refused"))
    run = store.create_run(exp.id, run_id=uuid.uuid4().hex, name="r", start_time=time.time())
    good = [(run.id, "ok", 1.0, 0, 1.0)]
    with pytest.raises(InvalidName, match="not allowed by MLflow"):
        store.write_batch(WriteBatch(metrics=[*good, (run.id, "acc@1", 1.0, 0, 1.0)]))
    with pytest.raises(InvalidValue, match="6000"):
        store.write_batch(WriteBatch(metrics=good, params=[(run.id, "long", "x" * 7000)]))
    with pytest.raises(InvalidValue, match="8000"):
        store.write_batch(WriteBatch(metrics=good, tags=[(run.id, "long", "x" * 9000)]))
    after = store.get_run(run.id)
    assert dict(after.metrics) == {} and dict(after.params) == {} and dict(after.tags) == {}


def test_large_batches_are_split_within_mlflow_limits(server: Any) -> None:
    store = MlflowTrackingStore(server.tracking_uri)
    exp = store.get_or_create_experiment(_name("large"))
    run = store.create_run(exp.id, run_id=uuid.uuid4().hex, name="r", start_time=time.time())
    store.write_batch(
        WriteBatch(
            metrics=[(run.id, "m", float(i), i, 1.0 + i / 1000) for i in range(2500)],
            params=[(run.id, f"p{i}", i) for i in range(250)],
            tags=[(run.id, f"t{i}", "v" * 7000) for i in range(150)],
        )
    )
    got = store.get_run(run.id)
    assert got.params == {f"p{i}": i for i in range(250)}
    assert len(got.tags) == 150 and got.metrics["m"] == 2499.0
    assert [m.step for m in store.metric_history(run.id, "m")] == list(range(2500))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_nothing_listening_fails_at_open_naming_the_server(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason=NO_MLFLOW)
    port = _free_port()
    started = time.monotonic()
    with pytest.raises(BackendError, match=f"127.0.0.1:{port}"):
        mlops.Workspace.open(tmp_path, tracking=f"mlflow+http://127.0.0.1:{port}")
    assert time.monotonic() - started < 30


def test_server_going_away_is_a_transient_error_naming_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("mlflow", reason=NO_MLFLOW)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    port = _free_port()
    store = MlflowTrackingStore(f"mlflow+http://127.0.0.1:{port}", check_connection=False)
    with pytest.raises(TransientError, match=f"127.0.0.1:{port}") as caught:
        store.get_run(uuid.uuid4().hex)
    assert isinstance(caught.value, BackendError)


class _FlakyProxy(http.server.ThreadingHTTPServer):
    """Forwards to the MLflow server, answering 503 to the first ``failures`` requests."""

    def __init__(self, target: str, failures: int) -> None:
        self.target = target
        self.failures = failures
        self.refused = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _FlakyProxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            fail = self.server.refused < self.server.failures
            if fail:
                self.server.refused += 1
        if fail:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        request = urllib.request.Request(
            self.server.target + self.path, data=body or None, method=self.command,
            headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = _forward


def test_transient_http_errors_are_retried(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    proxy = _FlakyProxy(server.url, failures=0)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        store = MlflowTrackingStore(f"mlflow+http://127.0.0.1:{proxy.server_address[1]}")
        exp = store.get_or_create_experiment(_name("flaky"))
        run = store.create_run(exp.id, run_id=uuid.uuid4().hex, name="r", start_time=time.time())
        proxy.failures = proxy.refused + 3  # the next three requests fail
        store.write_batch(WriteBatch(metrics=[(run.id, "m", 1.0, 0, 1.0)]))
        assert proxy.refused == proxy.failures
        assert store.get_run(run.id).metrics == {"m": 1.0}
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_listing_plugins_does_not_import_mlflow(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from mlops_sdk.plugins import get_plugin_manager\n"
        "registry = get_plugin_manager().registry\n"
        "print(sorted(s for s in registry.view('tracking') if s.startswith('mlflow')))\n"
        "print('mlflow' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**_env(), "MLOPS_PLUGINS": "mlflow"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout.splitlines()
    assert out == [
        "['mlflow+azureml', 'mlflow+databricks', 'mlflow+http', 'mlflow+https']",
        "False",
    ]


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}


def test_a_param_another_writer_stored_first_keeps_its_value(
    server: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MlflowTrackingStore(server.tracking_uri)
    exp = store.get_or_create_experiment(_name("race"))
    run = store.create_run(exp.id, run_id=uuid.uuid4().hex, name="r", start_time=time.time())
    real = store._new_params
    calls = []

    def stale(run_id: str, params: Any) -> Any:  # the first read happens before the other writer
        calls.append(run_id)
        if len(calls) == 1:
            client.log_param(run_id, "a", "1")
            return [(k, text, is_json) for k, (text, is_json) in params.items()]
        return real(run_id, params)

    monkeypatch.setattr(store, "_new_params", stale)
    store.write_batch(
        WriteBatch(
            params=[(run.id, "a", 2), (run.id, "b", 3)], metrics=[(run.id, "m", 1.0, 0, 1.0)]
        )
    )
    got = store.get_run(run.id)
    # the first writer's value stays; read with this writer's type record, as both wrote one key
    assert str(got.params["a"]) == "1" and got.params["b"] == 3 and got.metrics == {"m": 1.0}
    assert len(calls) == 2
