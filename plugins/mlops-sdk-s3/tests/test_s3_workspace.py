"""The quickstart on ``s3://``: datasets and models round-trip through a moto server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import mlops_sdk as mlops
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_names = st.text(alphabet="abcdefghij0123456789_-", min_size=1, max_size=8)
_trees = st.dictionaries(
    st.lists(_names, min_size=1, max_size=3).map("/".join), st.binary(max_size=2048), min_size=1, max_size=12
).filter(lambda t: not any(a != b and b.startswith(a + "/") for a in t for b in t))


def _write(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _read(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _workspace(root: Path, uri: str, db: Path) -> mlops.Workspace:
    root.mkdir(parents=True, exist_ok=True)
    return mlops.Workspace.open(root, storage=uri, tracking=f"sqlite:///{db}")


def test_dataset_round_trip_through_a_fresh_workspace(tmp_path: Path, s3_uri: str, s3: Any, bucket: str) -> None:
    files = {f"part-{i}/f{j}.bin": bytes([i, j]) * (100 * (j + 1)) for i in range(3) for j in range(40)}
    files["big.bin"] = np.random.default_rng(0).bytes(20 << 20)  # a multipart upload
    src = _write(tmp_path / "src", files)
    ws = _workspace(tmp_path / "a", s3_uri, tmp_path / "t.db")
    dsv = ws.dataset("customers").add(src, message="export")
    assert dsv.version == 1
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page.get("Contents", [])]
    assert keys and all(k.startswith("ws/") for k in keys)
    ws.close()

    other = _workspace(tmp_path / "b", s3_uri, tmp_path / "t.db")  # same records, empty local state
    result = other.dataset("customers").version(1).checkout(tmp_path / "out")
    assert result is not None
    assert _read(tmp_path / "out") == files
    other.close()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=_trees)
def test_random_trees_round_trip(tmp_path: Path, s3_uri: str, files: dict[str, bytes]) -> None:
    run = uuid.uuid4().hex[:8]
    src = _write(tmp_path / f"src-{run}", files)
    ws = _workspace(tmp_path / f"a-{run}", f"{s3_uri}-{run}", tmp_path / f"{run}.db")
    ws.dataset("d").add(src)
    ws.close()
    other = _workspace(tmp_path / f"b-{run}", f"{s3_uri}-{run}", tmp_path / f"{run}.db")
    other.dataset("d").version(1).checkout(tmp_path / f"out-{run}")
    assert _read(tmp_path / f"out-{run}") == files
    other.close()


def test_model_round_trip_through_a_fresh_workspace(tmp_path: Path, s3_uri: str) -> None:
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(1).normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    clf = LogisticRegression().fit(X, y)
    ws = _workspace(tmp_path / "a", s3_uri, tmp_path / "t.db")
    with ws.experiment("churn").start_run(name="lr") as run:
        mv = run.log_model(clf, "churn-clf", input_example=X[:5])
    ws.close()

    other = _workspace(tmp_path / "b", s3_uri, tmp_path / "t.db")
    loaded = other.model("churn-clf").version(mv.version).load()
    assert (loaded.predict(X) == clf.predict(X)).all()
    other.close()
