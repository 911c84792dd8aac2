"""SageMaker's serving contract on the model server, over real HTTP on 127.0.0.1.

A SageMaker endpoint container must answer ``GET /ping`` (200 when healthy) and
``POST /invocations`` (the request body as the client sent it through
``InvokeEndpoint``, with its ``Content-Type`` and ``Accept`` headers). The
``sagemaker://`` deployer of mlops-sdk-aws relies on both.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("sklearn")

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mlops_sdk as mlops
from mlops_sdk.deploy.local import payload_for
from mlops_sdk.serving import start_background


def call(url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         method: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, pd.DataFrame]]:
    ws = mlops.Workspace.open(tmp_path_factory.mktemp("sagemaker-routes"))
    X, y = load_iris(return_X_y=True, as_frame=True)
    with ws.experiment("serving").start_run() as run:
        mv = run.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris-clf", input_example=X[:5])
    yield mv, X
    ws.close()


@pytest.fixture(scope="module")
def server(iris: tuple[Any, pd.DataFrame]) -> Iterator[Any]:
    with start_background(iris[0]) as srv:
        yield srv


@pytest.fixture(scope="module")
def token_server(iris: tuple[Any, pd.DataFrame]) -> Iterator[Any]:
    with start_background(iris[0], auth_token="s3cr3t-token") as srv:
        yield srv


def test_ping_answers_like_health(server: Any) -> None:
    assert call(server.url + "/ping") == (200, {"status": "ok"})
    assert call(server.url + "/ping") == call(server.url + "/health")


def test_ping_stays_open_when_a_token_guards_invocations(token_server: Any) -> None:
    """SageMaker's health checks carry no credentials."""
    assert call(token_server.url + "/ping") == (200, {"status": "ok"})
    status, _ = call(token_server.url + "/invocations", b'{"instances": [[1, 2, 3, 4]]}',
                     {"Content-Type": "application/json"})
    assert status == 401


@pytest.mark.parametrize("fmt", ["split", "records", "instances", "inputs", "csv"])
def test_invocations_takes_the_bodies_invoke_endpoint_forwards(iris: Any, server: Any, fmt: str) -> None:
    mv, X = iris
    rows = X.iloc[[0, 55, 120, 7]]
    bodies = {
        "split": (json.dumps(payload_for(rows)), "application/json"),
        "records": (json.dumps(payload_for(rows.to_dict(orient="records"))), "application/json"),
        "instances": (json.dumps({"instances": rows.to_numpy().tolist()}), "application/json"),
        "inputs": (json.dumps(payload_for(rows.to_numpy())), "application/json"),
        "csv": (rows.to_csv(index=False), "text/csv"),
    }
    body, ctype = bodies[fmt]
    status, answer = call(server.url + "/invocations", body.encode(),
                          {"Content-Type": ctype, "Accept": "application/json"})
    assert status == 200, answer
    assert answer == {"predictions": mv.predict(rows).tolist()}


def test_ping_rejects_other_methods_and_invocations_rejects_get(server: Any) -> None:
    assert call(server.url + "/ping", b"{}", {"Content-Type": "application/json"}, method="POST")[0] == 405
    assert call(server.url + "/invocations")[0] == 405


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 149), min_size=1, max_size=20))
def test_any_rows_round_trip_through_invocations(iris: Any, server: Any, picks: list[int]) -> None:
    mv, X = iris
    rows = X.iloc[picks]
    status, answer = call(server.url + "/invocations", json.dumps(payload_for(rows)).encode(),
                          {"Content-Type": "application/json"})
    assert status == 200
    assert answer["predictions"] == mv.predict(rows).tolist()
