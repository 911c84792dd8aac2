"""The model registry of DESIGN.md §2 / issue 4, end to end with real scikit-learn and torch models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import mlops_sdk as mlops
from mlops_sdk.errors import (
    AliasNotFound,
    FlavorError,
    IntegrityError,
    InvalidName,
    InvalidValue,
    ModelNotFound,
    RunNotActive,
    SignatureMismatch,
    UnsafeModel,
    VersionNotFound,
)
from mlops_sdk.model import cache_root

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def forest(iris: tuple[np.ndarray, np.ndarray]) -> RandomForestClassifier:
    X, y = iris
    return RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)


def _python(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (no state shared with this test process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["MLOPS_PLUGINS"] = ""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _registry_state(ws: mlops.Workspace, name: str) -> tuple[Any, ...]:
    """Everything the registry holds about ``name``: to check that a refusal changed nothing."""
    t = ws.tracking
    names = t.version_names("model")
    versions = t.list_versions("model", name) if name in names else []
    return (
        names,
        [(v.version, v.id, dict(v.tags), v.message, dict(v.meta)) for v in versions],
        t.aliases("model", name),
        t.lineage(kind="model"),
    )


# -- round trips across processes ------------------------------------------------------------------


def test_sklearn_round_trip_in_a_fresh_process(
    workspace: mlops.Workspace, tmp_path: Path, iris: tuple[np.ndarray, np.ndarray], forest: RandomForestClassifier
) -> None:
    X, _ = iris
    with workspace.experiment("iris").start_run(name="rf") as run:
        run.log_metric("accuracy", 0.97)
        mv = run.log_model(forest, "iris-rf", input_example=X[:5], description="Classifies iris flowers")
    assert isinstance(mv, mlops.ModelVersion)
    assert (mv.name, mv.version, mv.flavor) == ("iris-rf", 1, "sklearn")
    assert mv.run_id == run.id
    assert mv.metrics == {"accuracy": 0.97}  # the run's latest metrics by default
    assert mv.description == "Classifies iris flowers"
    assert any(r.startswith("scikit-learn==") for r in mv.requirements)
    assert "scikit-learn" in mv.libraries and mv.python_version
    assert mv.signature is not None and mv.signature.tensor is not None
    assert mv.signature.tensor.shape == (-1, 4)
    assert mv.input_example == X[:5].tolist()
    assert mv.flavor_meta.get("format") != "pickle"  # skops, never pickle by default
    expected = forest.predict(X).tolist()

    out = _python(
        """
        import json, sys
        import numpy as np
        from sklearn.datasets import load_iris
        import mlops_sdk as mlops
        ws = mlops.Workspace.open(sys.argv[1])
        X, _ = load_iris(return_X_y=True)
        mv = ws.model("iris-rf").version(1)
        model = mv.load()
        print(json.dumps({"type": type(model).__name__, "load": model.predict(X).tolist(),
                          "predict": np.asarray(mv.predict(X)).tolist()}))
        """,
        tmp_path,
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["type"] == "RandomForestClassifier"
    assert got["load"] == expected and got["predict"] == expected


def test_torch_round_trip_in_a_fresh_process(workspace: mlops.Workspace, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    X, y = load_iris(return_X_y=True)
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    opt = torch.optim.Adam(mlp.parameters(), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(mlp(xt), yt).backward()
        opt.step()
    mlp.eval()
    with torch.no_grad():
        expected = mlp(xt).tolist()

    with workspace.experiment("iris").start_run(name="mlp") as run:
        mv = run.log_model(mlp, "iris-mlp", input_example=xt[:5], metrics={"loss": 0.1})
    assert mv.flavor == "torch"
    assert any(r.startswith("torch==") for r in mv.requirements)
    assert mv.signature is not None and mv.signature.tensor is not None
    assert (mv.signature.tensor.dtype, mv.signature.tensor.shape) == ("float32", (-1, 4))

    out = _python(
        """
        import json, sys
        import numpy as np
        import torch
        from sklearn.datasets import load_iris
        import mlops_sdk as mlops
        ws = mlops.Workspace.open(sys.argv[1])
        X, _ = load_iris(return_X_y=True)
        mv = ws.model("iris-mlp").latest
        pred = mv.predict(torch.tensor(X, dtype=torch.float32))
        pred = pred.detach().numpy() if hasattr(pred, "detach") else np.asarray(pred)
        print(json.dumps(pred.tolist()))
        """,
        tmp_path,
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


def test_pandas_frame_signature_names_the_column(workspace: mlops.Workspace) -> None:
    pd = pytest.importorskip("pandas")
    data = load_iris(as_frame=True)
    frame, y = data.frame.drop(columns="target"), data.target
    clf = LogisticRegression(max_iter=500).fit(frame, y)
    with workspace.experiment("iris").start_run() as run:
        mv = run.log_model(clf, "iris-lr", input_example=frame.head())
    assert mv.signature is not None and mv.signature.is_tabular
    assert [c.name for c in mv.signature.columns] == list(frame.columns)
    assert mv.input_example["columns"] == list(frame.columns)
    assert mv.predict(frame).tolist() == clf.predict(frame).tolist()
    rows = frame.head(3).to_dict(orient="records")  # JSON rows are turned into a frame
    assert list(mv.predict(rows)) == clf.predict(frame.head(3)).tolist()
    with pytest.raises(SignatureMismatch, match="petal width"):
        mv.predict(frame.drop(columns="petal width (cm)"))
    wrong = frame.astype({"sepal length (cm)": "object"})
    wrong["sepal length (cm)"] = "long"
    with pytest.raises(SignatureMismatch, match="sepal length"):
        mv.predict(wrong)
    assert isinstance(pd.DataFrame, type)


# -- versions ---------------------------------------------------------------------------------------


def test_versions_number_per_name(workspace: mlops.Workspace, iris: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = iris
    with workspace.experiment("iris").start_run() as run:
        a1 = run.log_model(LogisticRegression(max_iter=300).fit(X, y), "a", input_example=X[:2])
        a2 = run.log_model(LogisticRegression(C=0.1, max_iter=300).fit(X, y), "a")
        b1 = run.log_model(LogisticRegression(max_iter=300).fit(X, y), "b")
        a3 = run.log_model(LogisticRegression(max_iter=300).fit(X, y), "a")  # logging again: always a new version
    assert [a1.version, a2.version, a3.version, b1.version] == [1, 2, 3, 1]
    assert len({a1.id, a2.id, a3.id}) >= 2
    m = workspace.model("a")
    assert [v.version for v in m.versions()] == [1, 2, 3]
    assert m.latest == a3
    assert m.version(2) == m.version("2") == m.version("v2") == a2
    assert m.version("latest") == a3
    assert m.version(a2.id[:10]) == a2 and m.version(a2.id) == a2
    assert [x.name for x in workspace.models()] == ["a", "b"]
    assert run.tags["mlops.model.a"] == "v3"


def test_concurrent_registration_gets_distinct_numbers(
    workspace: mlops.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace.experiment("iris")  # the store exists before the writers start
    go = tmp_path / "go"
    # a plain-Python model saved by reference keeps the writers quick to start (no scikit-learn import)
    (tmp_path / "scoring.py").write_text("def score(rows):\n    return [sum(r) for r in rows]\n")
    script = """
        import json, pathlib, sys, time
        import mlops_sdk as mlops
        import scoring
        ws = mlops.Workspace.open(sys.argv[1])
        k = int(sys.argv[2])
        pathlib.Path(sys.argv[1], f"ready-{k}").touch()
        while not pathlib.Path(sys.argv[3]).exists():  # start registering together
            time.sleep(0.005)
        with ws.experiment("iris").start_run() as run:
            out = [run.log_model(scoring.score, "shared", metrics={"k": k}).version for _ in range(3)]
        print(json.dumps(out))
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["MLOPS_PLUGINS"] = ""
    env["PYTHONPATH"] = str(tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), str(tmp_path), str(k), str(go)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{k}").exists() for k in range(4)) and time.monotonic() < deadline:
        if any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(0.02)
    go.touch()
    numbers: list[int] = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=240)
        assert p.returncode == 0, stderr
        numbers += json.loads(stdout.strip().splitlines()[-1])
    assert sorted(numbers) == list(range(1, 13))
    versions = workspace.model("shared").versions()
    assert [v.version for v in versions] == list(range(1, 13))
    assert sorted(int(v.metrics["k"]) for v in versions) == sorted([0, 1, 2, 3] * 3)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert versions[0].load()([[1, 2], [3, 4]]) == [3, 7]


# -- aliases ----------------------------------------------------------------------------------------


def _three_versions(ws: mlops.Workspace, iris: tuple[np.ndarray, np.ndarray]) -> list[mlops.ModelVersion]:
    X, y = iris
    with ws.experiment("iris").start_run() as run:
        return [
            run.log_model(LogisticRegression(C=c, max_iter=300).fit(X, y), "clf", metrics={"C": c})
            for c in (0.1, 1.0, 10.0)
        ]


def test_aliases_set_move_and_roll_back(workspace: mlops.Workspace, iris: tuple[np.ndarray, np.ndarray]) -> None:
    v1, v2, v3 = _three_versions(workspace, iris)
    m = workspace.model("clf")
    v1.set_alias("production")
    v3.set_alias("staging")
    assert m.alias("production") == v1 and m.version("@staging") == v3
    assert m.aliases() == {"production": 1, "staging": 3}
    assert v1.aliases == ["production"]

    v2.set_alias("production")  # moves it
    v2.set_alias("production")  # pointing it where it is already is no move
    assert m.alias("production") == v2
    assert [v for v, _ in m.alias_history("production")] == [1, 2]

    assert m.rollback("production") == v1
    assert m.alias("production") == v1
    assert m.rollback("production") == v2  # a second rollback undoes the first
    assert [v for v, _ in m.alias_history("production")] == [1, 2, 1, 2]

    with pytest.raises(VersionNotFound, match="nothing to roll back"):
        m.rollback("staging")  # it never pointed anywhere else
    with pytest.raises(AliasNotFound):
        m.rollback("canary")
    with pytest.raises(AliasNotFound, match="canary"):
        m.alias("canary")
    with pytest.raises(AliasNotFound):
        m.version("@canary")
    v3.remove_alias("staging")
    with pytest.raises(AliasNotFound):
        m.alias("staging")
    for bad in ("", "a b", "../x", "latest", "v2", "7", "x" * 100, "a@b"):
        before = _registry_state(workspace, "clf")
        with pytest.raises(InvalidName):
            v1.set_alias(bad)
        assert _registry_state(workspace, "clf") == before


def test_tags_and_description(workspace: mlops.Workspace, iris: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = iris
    with workspace.experiment("iris").start_run() as run:
        mv = run.log_model(LogisticRegression(max_iter=300).fit(X, y), "clf", tags={"team": "bio"}, description="v1")
    mv.set_tag("reviewed", "yes")
    mv.set_tags({"team": "botany", "ticket": 42})  # type: ignore[dict-item]
    mv.set_description("Iris classifier, reviewed")
    again = workspace.model("clf").version(1)
    assert again.tags == {"team": "botany", "reviewed": "yes", "ticket": "42"}
    assert again.description == "Iris classifier, reviewed"
    assert again.id == mv.id  # metadata changes never change the content
    before = _registry_state(workspace, "clf")
    with pytest.raises(InvalidName):
        mv.set_tag("", "x")
    with pytest.raises(InvalidValue):
        mv.set_description(3)  # type: ignore[arg-type]
    assert _registry_state(workspace, "clf") == before


# -- bad input: typed errors, nothing changed -------------------------------------------------------------


def test_signature_is_checked_at_predict(
    workspace: mlops.Workspace, iris: tuple[np.ndarray, np.ndarray], forest: RandomForestClassifier
) -> None:
    X, _ = iris
    with workspace.experiment("iris").start_run() as run:
        mv = run.log_model(forest, "rf", input_example=X[:5])
    before = _registry_state(workspace, "rf")
    with pytest.raises(SignatureMismatch, match=r"shape.*\(-1, 4\).*\(150, 3\)"):
        mv.predict(X[:, :3])
    with pytest.raises(SignatureMismatch, match="shape"):
        mv.predict(X[0])
    with pytest.raises(SignatureMismatch, match=r"string|number"):
        mv.predict([["a", "b", "c", "d"]])
    assert mv.predict(X[:3].tolist()).tolist() == forest.predict(X[:3]).tolist()  # nested lists are fine
    assert _registry_state(workspace, "rf") == before


def test_unknown_names_versions_and_aliases(
    workspace: mlops.Workspace, iris: tuple[np.ndarray, np.ndarray], forest: RandomForestClassifier
) -> None:
    with pytest.raises(ModelNotFound, match="no model is registered"):
        workspace.model("nope")
    with workspace.experiment("iris").start_run() as run:
        run.log_model(forest, "rf")
    before = _registry_state(workspace, "rf")
    with pytest.raises(ModelNotFound, match="registered models: rf"):
        workspace.model("nope")
    m = workspace.model("rf")
    for ref in (2, "2", "v9", 0, -1, "abcdef12", "banana"):
        with pytest.raises(VersionNotFound):
            m.version(ref)
    with pytest.raises(AliasNotFound):
        m.alias("production")
    with pytest.raises(InvalidValue):
        m.version(1.0)  # type: ignore[arg-type]
    for bad in ("../etc", "a/b", "", ".", "x@1"):
        with pytest.raises(InvalidName):
            workspace.model(bad)
    assert _registry_state(workspace, "rf") == before


def test_unrecognised_object_raises_flavor_error_and_registers_nothing(workspace: mlops.Workspace) -> None:
    class NotAModel:
        pass

    with workspace.experiment("iris").start_run() as run:
        with pytest.raises(FlavorError):
            run.log_model(NotAModel(), "thing")
        with pytest.raises(FlavorError):
            run.log_model(object(), "thing", flavor="sklearn")
        with pytest.raises(InvalidName):
            run.log_model(LogisticRegression(), "../escape")
        with pytest.raises(InvalidValue):
            run.log_model(LogisticRegression(), "m", metrics={"acc": "high"})  # type: ignore[dict-item]
        with pytest.raises(InvalidValue):
            run.log_model(LogisticRegression(), "m", fairness=["not", "a", "dict"])  # type: ignore[arg-type]
    assert workspace.tracking.version_names("model") == []
    assert workspace.tracking.lineage(kind="model") == []
    with pytest.raises(RunNotActive):
        run.log_model(LogisticRegression(), "late")
    assert workspace.tracking.version_names("model") == []


def test_tampered_object_in_the_store_raises_integrity_error(
    workspace: mlops.Workspace, iris: tuple[np.ndarray, np.ndarray], forest: RandomForestClassifier
) -> None:
    X, _ = iris
    with workspace.experiment("iris").start_run() as run:
        mv = run.log_model(forest, "rf", input_example=X[:5])
    entry = max(mv.files(), key=lambda e: e.size)
    stored = workspace.objects.storage.local_path(workspace.objects.key(entry.digest))
    assert stored is not None
    os.chmod(stored, 0o644)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    # what log_model put in the local cache is the verified copy: it still loads correctly
    fresh = workspace.model("rf").version(1)
    assert fresh.predict(X).tolist() == forest.predict(X).tolist()

    # without the cache, the store is read (and checked) again: the tampered object is refused
    for child in cache_root(workspace).iterdir():
        import shutil

        shutil.rmtree(child)
    before = _registry_state(workspace, "rf")
    with pytest.raises(IntegrityError, match=entry.path):
        workspace.model("rf").version(1).load()
    assert _registry_state(workspace, "rf") == before
    assert not (cache_root(workspace) / mv.id).exists()  # nothing unverified was left behind


def test_tampered_cache_is_rebuilt_from_the_store(
    workspace: mlops.Workspace, iris: tuple[np.ndarray, np.ndarray], forest: RandomForestClassifier
) -> None:
    X, _ = iris
    with workspace.experiment("iris").start_run() as run:
        mv = run.log_model(forest, "rf", input_example=X[:5])
    folder = mv.local_path()
    assert folder == cache_root(workspace) / mv.id / "files"
    target = max(folder.rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else -1)
    assert not os.access(target, os.W_OK) or os.geteuid() == 0  # cached files are read-only
    st = target.stat()
    os.chmod(target, 0o644)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with its mtime put back
    (folder / "extra.py").write_text("print('not part of the model')")

    again = workspace.model("rf").version(1)
    assert again.predict(X).tolist() == forest.predict(X).tolist()
    assert target.read_bytes() != bytes(data)  # the copy was rebuilt from the verified store
    assert not (folder / "extra.py").exists()


def test_pickle_is_an_explicit_opt_in_and_a_malicious_pickle_is_refused(
    workspace: mlops.Workspace, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        """Unpickling this runs code: exactly what loading must never do by default."""

        def predict(self, X: Any) -> Any:
            return X

        def __reduce__(self) -> tuple[Any, ...]:
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    with workspace.experiment("iris").start_run() as run:
        with pytest.raises((UnsafeModel, FlavorError)):
            run.log_model(Evil(), "evil")  # a pickle-only object needs allow_pickle=True at save
        assert workspace.tracking.version_names("model") == []
        mv = run.log_model(Evil(), "evil", allow_pickle=True)
    assert mv.flavor_meta.get("format") == "pickle"
    for attempt in (lambda: mv.load(), lambda: workspace.model("evil").latest.predict([[1]])):
        with pytest.raises(UnsafeModel):
            attempt()
    assert not marker.exists()


# -- lineage and card ---------------------------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _trained_in_git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[mlops.Workspace, Any, str]:
    repo = tmp_path / "project"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("print('train')\n")
    (repo / ".gitignore").write_text(".mlops/\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    commit = _git(repo, "rev-parse", "HEAD")
    monkeypatch.chdir(repo)
    data = repo / "data"
    data.mkdir()
    X, y = load_iris(return_X_y=True)
    np.savetxt(data / "features.csv", X, delimiter=",")
    np.savetxt(data / "labels.csv", y, delimiter=",")
    ws = mlops.Workspace.open(repo)
    dsv = ws.dataset("iris").add(data, message="UCI iris")
    clf = LogisticRegression(max_iter=300).fit(X, y)
    with ws.experiment("iris").start_run(name="train-lr") as run:
        run.use_dataset(dsv)
        run.log_metrics({"accuracy": 0.973, "f1": 0.97})
        mv = run.log_model(
            clf,
            "iris-clf",
            input_example=X[:3],
            description="Tells the species of an iris flower from four measurements.",
            intended_use="Teaching <b>examples</b> only.",
            limitations="Trained on 150 flowers from one region.",
            fairness={"setosa": {"recall": 1.0}, "virginica": {"recall": 0.94}},
        )
    return ws, mv, commit


def test_lineage_names_run_commit_and_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws, mv, commit = _trained_in_git_repo(tmp_path, monkeypatch)
    try:
        lineage = mv.lineage()
        assert lineage.run is not None and lineage.run.id == mv.run_id and lineage.run.name == "train-lr"
        assert lineage.git_commit == commit and lineage.git_branch == "main"
        assert [(d.name, d.version) for d in lineage.datasets] == [("iris", 1)]
        assert lineage.experiment == "iris"
        dsv = ws.dataset("iris").latest
        assert dsv.lineage().models == [mv]  # and the other way round, from the data
    finally:
        ws.close()


def test_lineage_without_git_or_datasets(workspace: mlops.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # tmp_path is not in a git repository
    X, y = load_iris(return_X_y=True)
    with workspace.experiment("iris").start_run() as run:
        mv = run.log_model(LogisticRegression(max_iter=300).fit(X, y), "clf")
    lineage = mv.lineage()
    assert lineage.run is not None and lineage.datasets == []
    assert lineage.git_commit is None
    card = mv.card()
    assert "No dataset versions were recorded" in card and "No signature was recorded" in card
    assert card.count("Not provided.") == 3  # intended use, limitations, fairness


def test_model_card_markdown_and_html(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws, mv, commit = _trained_in_git_repo(tmp_path, monkeypatch)
    try:
        dsv = ws.dataset("iris").latest
        md = mv.card()
        assert md.startswith("# Model card: iris-clf v1")
        for text in (
            "Tells the species of an iris flower",
            "| accuracy | 0.973 |",
            "| f1 | 0.97 |",
            f"| iris | v1 | {dsv.id[:12]} | 2 files: features.csv, labels.csv | UCI iris |",
            "| float64 | any x 4 |",
            "Teaching <b>examples</b> only.",
            "Trained on 150 flowers from one region.",
            "| Group | recall |",
            "| setosa | 1 |",
            commit,
            "scikit-learn==",
        ):
            assert text in md, text
        page = mv.card(format="html")
        assert page.startswith("<!DOCTYPE html>")
        assert "Teaching &lt;b&gt;examples&lt;/b&gt; only." in page and "<b>examples</b>" not in page
        assert "<td>0.973</td>" in page and commit in page and dsv.id[:12] in page
        with pytest.raises(InvalidValue):
            mv.card(format="pdf")
    finally:
        ws.close()


def test_model_reprs(workspace: mlops.Workspace, iris: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = iris
    with workspace.experiment("iris").start_run() as run:
        mv = run.log_model(LogisticRegression(max_iter=300).fit(X, y), "clf<x>", metrics={"acc": 0.9})
    mv.set_alias("production")
    m = workspace.model("clf<x>")
    assert "clf&lt;x&gt;" in m._repr_html_() and "production" in m._repr_html_()
    assert "v1" in repr(mv) and "clf&lt;x&gt;" in mv._repr_html_()


def test_import_mlops_sdk_model_stays_light(tmp_path: Path) -> None:
    out = _python(
        """
        import json, sys
        import mlops_sdk as mlops
        mlops.Model, mlops.ModelVersion
        import mlops_sdk.model, mlops_sdk.card
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not loaded & {"torch", "sklearn", "pandas", "numpy", "skops"}
