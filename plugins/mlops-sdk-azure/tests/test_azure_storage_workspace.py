"""The quickstart's data and model flows with ``storage="az://…"``, against Azurite.

A second workspace with an empty local state (its own root, so no local cache,
no stat cache) and the same tracking database and storage reads everything
back: the bytes must come from Azure, and be identical.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import mlops_sdk as mlops
import pytest
from azure_testutil import FAST, blob_names
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlops_sdk.testing.cloud_servers import AzuriteServer

_names = st.text(alphabet="abcdefghij-_.0123456789 ", min_size=1, max_size=8).filter(
    lambda s: s.strip() == s and s not in (".", "..") and not s.startswith(".")
)
_trees = st.dictionaries(st.lists(_names, min_size=1, max_size=3).map("/".join), st.binary(max_size=2048), min_size=1, max_size=6)


def _portable(tree: dict[str, bytes]) -> dict[str, bytes]:
    """Drop paths that are also folders of other paths (a file system cannot hold both)."""
    return {p: b for p, b in tree.items() if not any(o != p and o.startswith(p + "/") for o in tree)}


def _write(root: Path, tree: dict[str, bytes]) -> None:
    for rel, data in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _read(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _pair(base: Path, uri: str) -> tuple[mlops.Workspace, mlops.Workspace]:
    """The writer's workspace and a reader's with an empty local state, sharing tracking and storage."""
    (base / "a").mkdir(parents=True)
    (base / "b").mkdir()
    tracking = f"sqlite:///{base / 'tracking.db'}"
    return mlops.Workspace.open(base / "a", tracking=tracking, storage=uri), mlops.Workspace.open(base / "b", tracking=tracking, storage=uri)


def test_dataset_round_trip(az_env: AzuriteServer, container: str, tmp_path: Path) -> None:
    tree = {"train.csv": b"id,x\n1,0.5\n", "images/cat.bin": bytes(range(256)) * 300, "empty.txt": b"", "a b/ü.txt": b"x"}
    _write(tmp_path / "data", tree)
    writer, reader = _pair(tmp_path / "ws", f"az://{container}/team?{FAST}")
    v1 = writer.dataset("customers").add(tmp_path / "data", message="first")
    assert any(name.startswith("team/") for name in blob_names(az_env, container))  # the bytes went to Azure
    assert not list((tmp_path / "ws" / "a").rglob("objects"))  # and are not kept in a local object store

    dsv = reader.dataset("customers").version(1)
    assert dsv.id == v1.id
    result = dsv.checkout(tmp_path / "out")
    assert result.written == len(tree)
    assert _read(tmp_path / "out") == tree
    assert dsv.read_bytes("train.csv") == tree["train.csv"]
    writer.close()
    reader.close()


@given(tree=_trees)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_random_trees_round_trip_through_the_workspace(az_env: AzuriteServer, container: str, tree: dict[str, bytes]) -> None:
    tree = _portable(tree)
    base = Path(tempfile.mkdtemp(prefix="az-ws-"))
    try:
        _write(base / "data", tree)
        writer, reader = _pair(base / "ws", f"az://{container}/{uuid.uuid4().hex}?{FAST}")
        writer.dataset("d").add(base / "data")
        reader.dataset("d").version(1).checkout(base / "out")
        assert _read(base / "out") == tree
        writer.close()
        reader.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow  # scikit-learn import and fit
def test_model_round_trip(az_env: AzuriteServer, container: str, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    linear = pytest.importorskip("sklearn.linear_model")
    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [0.5, 0.5], [2.5, 1.5]])
    y = np.array([0, 0, 1, 1, 0, 1])
    clf = linear.LogisticRegression().fit(X, y)
    writer, reader = _pair(tmp_path / "ws", f"az://{container}/models?{FAST}")
    with writer.experiment("churn").start_run(name="lr") as run:
        mv = run.log_model(clf, "churn-clf", input_example=X[:2])
    assert blob_names(az_env, container)  # the model's files are blobs

    loaded_version = reader.model("churn-clf").latest
    assert loaded_version.id == mv.id
    loaded = loaded_version.load()
    assert type(loaded).__name__ == "LogisticRegression"
    assert (loaded.predict(X) == clf.predict(X)).all()
    assert (loaded_version.predict(X[:3]) == clf.predict(X[:3])).all()
    writer.close()
    reader.close()
