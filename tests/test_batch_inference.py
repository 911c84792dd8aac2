"""Batch inference: ModelVersion.predict_batch over dataset versions, with lineage and typed errors."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

import mlops_sdk as mlops
from mlops_sdk.errors import InvalidName, InvalidValue, SignatureMismatch


@pytest.fixture
def iris() -> pd.DataFrame:
    frame = load_iris(as_frame=True).frame
    return frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))


@pytest.fixture
def iris_model(workspace: mlops.Workspace, iris: pd.DataFrame) -> mlops.ModelVersion:
    X, y = iris.drop(columns="target"), iris["target"]
    with workspace.experiment("train").start_run(name="lr") as run:
        return run.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris-clf", input_example=X[:5])


def _add(ws: mlops.Workspace, name: str, folder: Path) -> mlops.DatasetVersion:
    return ws.dataset(name).add(folder)


def _read(out: mlops.DatasetVersion, path: str) -> pd.DataFrame:
    data = io.BytesIO(out.read_bytes(path))
    return pd.read_parquet(data) if path.endswith(".parquet") else pd.read_csv(data)


def test_predicts_every_file_in_chunks_with_lineage(
    workspace: mlops.Workspace, iris: pd.DataFrame, iris_model: mlops.ModelVersion, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    iris.iloc[:100].drop(columns="target").to_csv(folder / "part-0.csv", index=False)
    iris.iloc[100:].drop(columns="target").to_csv(folder / "sub" / "part-1.csv", index=False)
    (folder / "README.txt").write_text("not a table")
    dsv = _add(workspace, "iris-in", folder)

    calls: list[tuple[int, int]] = []
    out = iris_model.predict_batch(dsv, chunk_rows=7, progress=lambda b, f: calls.append((b, f)))

    assert out.name == "iris-clf-predictions" and out.version == 1
    assert [e.path for e in out.files()] == ["part-0.parquet", "sub/part-1.parquet"]
    got = pd.concat([_read(out, "part-0.parquet"), _read(out, "sub/part-1.parquet")], ignore_index=True)
    features = iris.drop(columns="target")
    pd.testing.assert_frame_equal(got[features.columns.tolist()], features)
    assert got["prediction"].tolist() == iris_model.predict(features).tolist()
    # chunked: one Parquet row group per chunk of at most 7 rows
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(io.BytesIO(out.read_bytes("part-0.parquet"))).metadata
    assert meta.num_row_groups == math.ceil(100 / 7)
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == 7
    # progress covered every tabular byte and file
    tabular = [e for e in dsv.files() if e.path.endswith(".csv")]
    assert sum(b for b, _ in calls) == sum(e.size for e in tabular)
    assert sum(f for _, f in calls) == 2

    # lineage, both ways
    assert out.tags["mlops.model"] == "iris-clf"
    assert out.tags["mlops.model_version"] == "1"
    assert out.tags["mlops.input"] == "iris-in@v1"
    run = workspace.get_run(out.tags["mlops.run"])
    assert run.status == "FINISHED"
    assert workspace.get_experiment("batch-inference").id == run.experiment_id
    assert run.name == "iris-clf"
    assert run.tags["mlops.model"] == "iris-clf" and run.tags["mlops.output"] == "iris-clf-predictions@v1"
    assert run.metrics["rows"] == 150
    assert [d.label for d in run.datasets()] == [dsv.label]
    assert run.id in [r.id for r in dsv.lineage().runs]
    edges = workspace.tracking.lineage(run_id=run.id)
    assert ("model", "iris-clf", 1, "input") in [(e.kind, e.name, e.version, e.role) for e in edges]
    assert ("dataset", out.name, 1, "output") in [(e.kind, e.name, e.version, e.role) for e in edges]


def test_regressor_on_tsv_jsonl_and_parquet_inputs(workspace: mlops.Workspace, tmp_path: Path) -> None:
    frame = load_diabetes(as_frame=True).frame
    X, y = frame.drop(columns="target"), frame["target"]
    with workspace.experiment("train").start_run() as run:
        mv = run.log_model(LinearRegression().fit(X, y), "diabetes", input_example=X[:5])
    folder = tmp_path / "in"
    folder.mkdir()
    X.iloc[:150].to_csv(folder / "a.tsv", sep="\t", index=False)
    X.iloc[150:300].to_json(folder / "b.jsonl", orient="records", lines=True)
    X.iloc[300:].to_parquet(folder / "c.parquet", index=False)
    dsv = workspace.dataset("diabetes-in").add(folder)

    out = mv.predict_batch(dsv, "scores", chunk_rows=64, progress=False)

    assert out.name == "scores"
    got = pd.concat([_read(out, p) for p in ("a.parquet", "b.parquet", "c.parquet")], ignore_index=True)
    assert len(got) == len(X)
    expected = mv.predict(X)
    assert got["prediction"].to_numpy() == pytest.approx(expected, rel=1e-6)  # JSON keeps 10 digits


def test_tensor_signature_with_chosen_columns(workspace: mlops.Workspace, iris: pd.DataFrame, tmp_path: Path) -> None:
    X = iris[["sepal_length", "petal_length"]].to_numpy()
    with workspace.experiment("train").start_run() as run:
        mv = run.log_model(LogisticRegression(max_iter=500).fit(X, iris["target"]), "two", input_example=X[:5])
    folder = tmp_path / "in"
    folder.mkdir()
    iris.to_csv(folder / "iris.csv", index=False)
    dsv = workspace.dataset("iris-all").add(folder)

    with pytest.raises(SignatureMismatch, match="takes 2 columns"):
        mv.predict_batch(dsv, progress=False)  # every column: 5, the model takes 2
    assert workspace.dataset("two-predictions").versions() == []

    out = mv.predict_batch(dsv, columns=["sepal_length", "petal_length"], progress=False)
    got = _read(out, "iris.parquet")
    assert got["prediction"].tolist() == mv.predict(X).tolist()
    assert "target" in got.columns  # the input rows are kept whole


def test_bad_input_registers_nothing(
    workspace: mlops.Workspace, iris: pd.DataFrame, iris_model: mlops.ModelVersion, tmp_path: Path
) -> None:
    def folder(name: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        return path

    text_only = folder("text")
    (text_only / "notes.txt").write_text("hello")
    empty = folder("empty")
    iris.drop(columns="target").iloc[:0].to_csv(empty / "empty.csv", index=False)
    wrong = folder("wrong")
    iris.drop(columns=["target", "petal_width"]).to_csv(wrong / "wrong.csv", index=False)
    good = folder("good")
    iris.drop(columns="target").to_csv(good / "good.csv", index=False)

    with pytest.raises(InvalidValue, match="no tabular files"):
        iris_model.predict_batch(_add(workspace, "text", text_only), progress=False)
    with pytest.raises(InvalidValue, match="no rows"):
        iris_model.predict_batch(_add(workspace, "empty", empty), progress=False)
    with pytest.raises(SignatureMismatch, match="petal_width"):
        iris_model.predict_batch(_add(workspace, "wrong", wrong), progress=False)
    good_dsv = _add(workspace, "good", good)
    with pytest.raises(SignatureMismatch, match="do not match the signature"):
        iris_model.predict_batch(good_dsv, columns=["sepal_length"], progress=False)
    with pytest.raises(InvalidName):
        iris_model.predict_batch(good_dsv, "../escape", progress=False)
    with pytest.raises(InvalidValue, match="chunk_rows"):
        iris_model.predict_batch(good_dsv, chunk_rows=0, progress=False)
    with pytest.raises(InvalidValue, match="DatasetVersion"):
        iris_model.predict_batch("good@1", progress=False)  # type: ignore[arg-type]

    assert workspace.dataset("iris-clf-predictions").versions() == []
    assert workspace.dataset("../escape".replace("../", "")).versions() == []
