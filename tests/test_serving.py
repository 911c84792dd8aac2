"""The model server over real HTTP on 127.0.0.1: formats, errors, auth, limits, metrics, batching, CLI."""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("sklearn")

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression

import mlops_sdk as mlops
from mlops_sdk.errors import PortInUse
from mlops_sdk.serving import Batching, start_background, start_process

TIMEOUT = 10


def request(
    url: str, body: Any = None, *, method: str | None = None, ctype: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": ctype, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            status, raw, hdrs = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        status, raw, hdrs = err.code, err.read(), dict(err.headers)
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw.decode()
    return status, parsed, {k.lower(): v for k, v in hdrs.items()}


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else r"(?:\{\})?") + r" (\S+)"
    found = re.search("^" + pattern + "$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[mlops.Workspace]:
    workspace = mlops.Workspace.open(tmp_path_factory.mktemp("serving"))
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def iris(ws: mlops.Workspace) -> tuple[Any, pd.DataFrame]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    with ws.experiment("serving").start_run() as run:
        mv = run.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris-clf", input_example=X[:5])
    return mv, X


@pytest.fixture(scope="module")
def diabetes(ws: mlops.Workspace) -> tuple[Any, pd.DataFrame]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    with ws.experiment("serving").start_run() as run:
        model = RandomForestRegressor(n_estimators=20, random_state=0).fit(X, y)
        mv = run.log_model(model, "diabetes-rf", input_example=X[:5])
    return mv, X


@pytest.fixture(scope="module")
def iris_server(iris: tuple[Any, pd.DataFrame]) -> Iterator[Any]:
    with start_background(iris[0]) as server:
        yield server


@pytest.fixture(scope="module")
def rf_server(diabetes: tuple[Any, pd.DataFrame]) -> Iterator[Any]:
    with start_background(diabetes[0]) as server:
        yield server


def payloads(X: pd.DataFrame) -> dict[str, Any]:
    return {
        "dataframe_split": {"dataframe_split": json.loads(X.to_json(orient="split", index=False))},
        "dataframe_split_index": {"dataframe_split": json.loads(X.to_json(orient="split"))},
        "dataframe_records": {"dataframe_records": X.to_dict(orient="records")},
        "instances_rows": {"instances": X.to_numpy().tolist()},
        "instances_records": {"instances": X.to_dict(orient="records")},
        "inputs_columns": {"inputs": X.to_dict(orient="list")},
        "inputs_rows": {"inputs": X.to_numpy().tolist()},
    }


@pytest.mark.parametrize("fmt", list(payloads(pd.DataFrame({"a": [1.0]}))))
@pytest.mark.parametrize("which", ["iris", "rf"])
def test_every_json_format_predicts_like_mv_predict(
    fmt: str, which: str, iris: Any, diabetes: Any, iris_server: Any, rf_server: Any
) -> None:
    (mv, X), server = (iris, iris_server) if which == "iris" else (diabetes, rf_server)
    rows = X.iloc[[0, 7, 51, 120, 3]] if which == "iris" else X.iloc[:6]
    status, body, headers = request(server.url + "/invocations", payloads(rows)[fmt])
    assert status == 200, body
    assert body == {"predictions": mv.predict(rows).tolist()}
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])


def test_csv_and_single_row(iris: Any, iris_server: Any) -> None:
    mv, X = iris
    rows = X.iloc[10:14]
    status, body, _ = request(iris_server.url + "/invocations", rows.to_csv(index=False).encode(), ctype="text/csv")
    assert status == 200, body
    assert body["predictions"] == mv.predict(rows).tolist()
    one = X.iloc[[60]]
    status, body, _ = request(
        iris_server.url + "/invocations", {"dataframe_records": one.to_dict(orient="records")},
        ctype="application/json; charset=utf-8",
    )
    assert status == 200 and body["predictions"] == mv.predict(one).tolist()


def test_health_ping_metadata(iris: Any, iris_server: Any) -> None:
    mv, _ = iris
    for path in ("/health", "/ping"):
        status, body, _ = request(iris_server.url + path)
        assert status == 200 and body == {"status": "ok"}
    status, meta, _ = request(iris_server.url + "/metadata")
    assert status == 200
    assert meta["name"] == "iris-clf" and meta["version"] == mv.version and meta["id"] == mv.id
    assert meta["flavor"] == "sklearn"
    assert [c["name"] for c in meta["signature"]["inputs"]] == list(load_iris(as_frame=True).data.columns)


BAD = [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    ({"rows": [[1, 2, 3, 4]]}, 400, "exactly one of the keys"),
    ({"inputs": [[1, 2, 3, 4]], "instances": [[1, 2, 3, 4]]}, 400, "got 2 of them"),
    ({"inputs": []}, 400, "empty batch"),
    ({"dataframe_records": []}, 400, "empty batch"),
    ({"dataframe_split": {"columns": ["a"], "data": []}}, 400, "empty batch"),
    ({"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}, 400, "row 0 has 1 values for 2 columns"),
    ({"dataframe_records": "x"}, 400, "list of objects"),
    ({"inputs": [[1.0, 2.0]]}, 422, "takes 4 columns"),
    ({"dataframe_records": [{"a": 1.0}]}, 422, "missing columns"),
    ({"inputs": [["x", "y", "z", "w"]]}, 422, "a number is expected"),
    ({"inputs": {"sepal length (cm)": [1.0, None], "sepal width (cm)": [1.0, 2.0],
                 "petal length (cm)": [1.0, 2.0], "petal width (cm)": [1.0, 2.0]}}, 422, "NaN"),
    (b'{"inputs": [[NaN, 1, 1, 1]]}', 400, "not valid JSON"),
    ({"inputs": [[None, 1, 1, 1]]}, 422, "missing (null / NaN) values"),
    ({"inputs": [[1, 2, 3, 4]], "params": {"k": 1}}, 400, "no 'params'"),
    (b"", 400, "body is empty"),
]


@pytest.mark.parametrize(("body", "status", "reason"), BAD, ids=[f"{b[1]}-{b[2]}" for b in BAD])
def test_bad_input_gets_status_and_reason(iris_server: Any, body: Any, status: int, reason: str) -> None:
    got, payload, headers = request(iris_server.url + "/invocations", body)
    assert got == status, payload
    assert reason in payload["message"]
    assert payload["request_id"] == headers["x-request-id"]
    assert payload["error_code"] in ("BAD_REQUEST", "INVALID_INPUT")


def test_wrong_content_type_method_and_path(iris_server: Any) -> None:
    status, body, _ = request(iris_server.url + "/invocations", b"a,b\n1,2", ctype="application/xml")
    assert status == 415 and "not supported" in body["message"]
    assert request(iris_server.url + "/invocations")[0] == 405  # GET
    assert request(iris_server.url + "/nope")[0] == 404
    status, body, _ = request(iris_server.url + "/invocations", b"\x00\x01not,csv\n\n", ctype="text/csv")
    assert status in (400, 422)


def test_model_raising_gives_500_with_request_id_and_server_keeps_serving(iris: Any) -> None:
    mv, X = iris
    nan_row = {"inputs": [[math.nan, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]}
    with start_background(mv, allow_nan=True) as server:
        body = json.dumps(nan_row, allow_nan=True).encode()  # the NaN literal, accepted with allow_nan
        status, payload, headers = request(
            server.url + "/invocations", body, headers={"X-Request-ID": "trace-42"}
        )
        assert status == 500
        assert payload["error_code"] == "INTERNAL_ERROR" and payload["request_id"] == "trace-42"
        assert "ValueError" in payload["message"] and headers["x-request-id"] == "trace-42"
        good = X.iloc[[0, 100]]
        status, payload, _ = request(server.url + "/invocations", {"inputs": good.to_numpy().tolist()})
        assert status == 200 and payload["predictions"] == mv.predict(good).tolist()
        _, text, _ = request(server.url + "/metrics")
        assert metric(text, "mlops_errors_total", 'kind="model"') == 1


def test_bearer_token_auth(iris: Any) -> None:
    mv, X = iris
    body = {"inputs": X.iloc[:2].to_numpy().tolist()}
    with start_background(mv, auth_token="s3cret-token") as server:
        url = server.url + "/invocations"
        status, payload, headers = request(url, body)
        assert status == 401 and "Bearer" in payload["message"]
        assert headers["www-authenticate"].startswith("Bearer")
        assert request(url, body, headers={"Authorization": "Bearer wrong"})[0] == 401
        assert request(url, body, headers={"Authorization": "Basic s3cret-token"})[0] == 401
        ok = {"Authorization": "Bearer s3cret-token"}
        status, payload, _ = request(url, body, headers=ok)
        assert status == 200 and payload["predictions"] == mv.predict(X.iloc[:2]).tolist()
        assert request(server.url + "/metadata")[0] == 401
        assert request(server.url + "/metrics")[0] == 401
        assert request(server.url + "/metrics", headers=ok)[0] == 200
        assert request(server.url + "/health")[0] == 200  # probes need no token


def test_body_limit_declared_and_chunked(iris: Any) -> None:
    mv, X = iris
    with start_background(mv, max_body_bytes=2000) as server:
        big = {"inputs": np.tile(X.iloc[:1].to_numpy(), (200, 1)).tolist()}
        status, payload, _ = request(server.url + "/invocations", big)
        assert status == 413 and "at most 2000" in payload["message"]
        # no Content-Length: the limit holds while the body streams in
        conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
        try:
            chunks = iter([b'{"inputs": [' + b"[1,2,3,4]," * 300, b"[1,2,3,4]]}"])
            conn.request("POST", "/invocations", body=chunks, encode_chunked=True,
                         headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
            resp = conn.getresponse()
            assert resp.status == 413
            resp.read()
        finally:
            conn.close()
        small = {"inputs": X.iloc[:2].to_numpy().tolist()}
        assert request(server.url + "/invocations", small)[0] == 200


def test_metrics_counters_move(rf_server: Any, diabetes: Any) -> None:
    _, X = diabetes
    url = rf_server.url
    _, before, _ = request(url + "/metrics")
    for _ in range(3):
        assert request(url + "/invocations", {"inputs": X.iloc[:4].to_numpy().tolist()})[0] == 200
    assert request(url + "/invocations", {"inputs": [[1.0]]})[0] == 422
    status, after, headers = request(url + "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    ok = 'endpoint="/invocations",method="POST",status="200"'
    assert metric(after, "mlops_requests_total", ok) - metric(before, "mlops_requests_total", ok) == 3
    bad = 'endpoint="/invocations",method="POST",status="422"'
    assert metric(after, "mlops_requests_total", bad) - metric(before, "mlops_requests_total", bad) == 1
    assert metric(after, "mlops_predicted_rows_total") - metric(before, "mlops_predicted_rows_total") == 12
    assert metric(after, "mlops_errors_total", 'kind="invalid_input"') >= 1
    count = 'endpoint="/invocations",le="+Inf"'
    assert metric(after, "mlops_request_duration_seconds_bucket", count) >= 4
    assert 'mlops_model_info{name="diabetes-rf",version="1"' in after


def test_micro_batching_returns_each_request_its_own_rows(iris: Any) -> None:
    mv, X = iris
    with start_background(mv, batching=Batching(max_batch=32, max_wait_ms=50)) as server:
        rows = [X.iloc[[i]] for i in range(0, 150, 10)] + [X.iloc[[5, 55, 105]]]

        def one(frame: pd.DataFrame) -> tuple[int, Any]:
            status, body, _ = request(server.url + "/invocations", {"dataframe_records": frame.to_dict("records")})
            return status, body

        with ThreadPoolExecutor(len(rows)) as pool:
            results = list(pool.map(one, rows))
        for frame, (status, body) in zip(rows, results, strict=True):
            assert status == 200, body
            assert body["predictions"] == mv.predict(frame).tolist()
        _, text, _ = request(server.url + "/metrics")
        calls = metric(text, "mlops_predict_calls_total")
        assert 1 <= calls < len(rows)  # concurrent requests shared predict calls
        assert metric(text, "mlops_predicted_rows_total") == len(rows) + 2
        # a bad request inside a batch fails alone
        bad = {"inputs": [[1.0, 2.0]]}
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(request, server.url + "/invocations", b) for b in
                       (bad, {"inputs": X.iloc[:1].to_numpy().tolist()}, bad, {"inputs": X.iloc[1:2].to_numpy().tolist()})]
            statuses = [f.result()[0] for f in futures]
        assert statuses == [422, 200, 422, 200]


def test_port_in_use_is_a_typed_error_before_anything_starts(iris: Any) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} .* already in use"):
            start_background(iris[0], port=port)
    finally:
        holder.close()


def test_cli_does_not_import_the_server_stack() -> None:
    code = "import sys, mlops_sdk.cli; bad = [m for m in ('starlette', 'uvicorn') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


LOG_MODEL = textwrap.dedent(
    """
    import mlops_sdk as mlops
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    X, y = load_iris(return_X_y=True, as_frame=True)
    ws = mlops.Workspace.open(".")
    with ws.experiment("cli").start_run() as run:
        mv = run.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris", input_example=X[:5])
    mv.set_alias("production")
    ws.close()
    """
)


def test_mlops_serve_subprocess_serves_a_model_logged_by_another_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["MLOPS_PLUGINS"] = ""
    subprocess.run([sys.executable, "-c", LOG_MODEL], cwd=tmp_path, env=env, check=True, timeout=120)
    ws = mlops.Workspace.open(tmp_path)
    try:
        mv = ws.model("iris").version(1)
        X = load_iris(as_frame=True).data.iloc[[0, 60, 120]]
        expected = mv.predict(X).tolist()
    finally:
        ws.close()
    env["SERVE_TOKEN"] = "tok-123"
    proc = start_process("iris@production", workspace=tmp_path, port=0, token_env="SERVE_TOKEN", env=env)
    try:
        assert proc.url.startswith("http://127.0.0.1:")
        status, body, _ = request(proc.url + "/invocations", {"dataframe_split": json.loads(X.to_json(orient="split"))},
                                  headers={"Authorization": "Bearer tok-123"})
        assert status == 200 and body["predictions"] == expected
        assert request(proc.url + "/invocations", {"inputs": [[1, 2, 3, 4]]})[0] == 401
        port = int(proc.url.rsplit(":", 1)[1])
        with pytest.raises(PortInUse):  # a second server on the same port fails fast, typed
            start_process("iris@1", workspace=tmp_path, port=port, env=env)
    finally:
        code = proc.stop()
    assert code == 0, proc.logs()
    assert not proc.running
    # unknown model: exit 1 with the reason, nothing served
    out = subprocess.run(
        [sys.executable, "-m", "mlops_sdk.cli", "--workspace", str(tmp_path), "serve", "nope@1", "--port", "0"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert out.returncode == 1 and "no model called 'nope'" in out.stderr
