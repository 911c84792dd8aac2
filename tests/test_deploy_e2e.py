"""Done-when of issue 5: register → deploy locally → predict over HTTP (MLflow payload) → update →
rollback → monitor a shifted batch (drift alert) and an unshifted one (none); nothing left running.

Real processes: each deployment is a router and an ``mlops serve`` child on 127.0.0.1.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("sklearn")

import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import mlops_sdk as mlops
from mlops_sdk.deploy.local import pid_alive


def post(url: str, payload: Any) -> tuple[int, Any]:
    req = urllib.request.Request(url + "/invocations", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def metadata(url: str) -> Any:
    with urllib.request.urlopen(url + "/metadata", timeout=10) as resp:
        return json.loads(resp.read())


def split(frame: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}


def wait_for_log(dep: mlops.Deployment, rows: int, timeout: float = 15.0) -> pd.DataFrame:
    deadline = time.monotonic() + timeout
    while True:
        log = dep.inference_log()
        if len(log) >= rows or time.monotonic() > deadline:
            return log
        time.sleep(0.2)


def test_register_deploy_update_rollback_monitor(tmp_path: Path) -> None:
    ws = mlops.Workspace.open(tmp_path)
    X, y = load_iris(return_X_y=True, as_frame=True)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    X.to_csv(data_dir / "iris.csv", index=False)
    dsv = ws.dataset("iris").add(data_dir, message="reference")
    with ws.experiment("e2e").start_run() as run:
        run.use_dataset(dsv)
        mv1 = run.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris-clf", input_example=X[:5])
        mv2 = run.log_model(DecisionTreeClassifier(random_state=0).fit(X, y), "iris-clf", input_example=X[:5])
    pids: set[int] = set()
    deps: list[mlops.Deployment] = []
    try:
        dep = ws.deploy(mv1, name="iris-api", target="local")
        deps.append(dep)
        pids.update(dep.deployer.pids("iris-api"))  # type: ignore[attr-defined]
        url = dep.url
        assert url is not None and url.startswith("http://127.0.0.1:")
        assert dep.status == "running"

        # predict over HTTP with an MLflow scoring-server payload
        status, body = post(url, split(X.iloc[:10]))
        assert status == 200
        assert body["predictions"] == mv1.predict(X.iloc[:10]).tolist()
        assert dep.predict(X.iloc[:3]) == mv1.predict(X.iloc[:3]).tolist()
        assert metadata(url)["version"] == 1

        # update: same URL, new version
        dep.update(mv2)
        pids.update(dep.deployer.pids("iris-api"))  # type: ignore[attr-defined]
        assert dep.url == url and dep.version == 2 and metadata(url)["version"] == 2
        assert post(url, split(X.iloc[:10]))[1]["predictions"] == mv2.predict(X.iloc[:10]).tolist()

        # rollback: back to v1, still the same URL
        dep.rollback()
        pids.update(dep.deployer.pids("iris-api"))  # type: ignore[attr-defined]
        assert dep.url == url and dep.version == 1 and metadata(url)["version"] == 1
        assert dep.info().previous_versions == ()

        # traffic shifted away from the reference → drift alert
        shifted = X.sample(150, random_state=1, replace=True).reset_index(drop=True) + 2.5
        before = wait_for_log(dep, 23)  # the 23 rows predicted above (10 + 3 + 10)
        assert {"prediction", "timestamp", "latency_ms", "model_version"} <= set(before.columns)
        since = pd.Timestamp.now(tz="UTC")
        for start in range(0, 150, 30):
            post(url, split(shifted.iloc[start:start + 30]))
        assert len(wait_for_log(dep, len(before) + 150)) == len(before) + 150
        report = dep.monitor(reference=dsv, since=since.isoformat())
        assert "drift" in {a.kind for a in report.alerts}
        assert report.drift is not None and set(report.drift.drifted) == set(X.columns)

        # a fresh deployment with traffic like the reference → no alert
        calm = ws.deploy(f"iris-clf@{mv1.version}", name="iris-calm", target="local")
        deps.append(calm)
        pids.update(calm.deployer.pids("iris-calm"))  # type: ignore[attr-defined]
        assert calm.url != url
        for start in range(0, 150, 30):
            post(calm.url or "", split(X.iloc[start:start + 30]))
        assert len(wait_for_log(calm, 150)) == 150
        assert calm.monitor(reference=dsv).alerts == []

        assert sorted(d.name for d in ws.deployments()) == ["iris-api", "iris-calm"]
    finally:
        for d in deps:
            d.stop()
        ws.close()
    assert [d.status for d in deps] == ["stopped", "stopped"]
    assert pids and not [p for p in pids if pid_alive(p)], "processes left running"
