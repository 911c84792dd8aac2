"""Model flavors with real models: save here, load in a fresh interpreter, same predictions.

Also the safety promises (DESIGN.md §5): a tampered skops file, a tampered
torch.export archive or a malicious pickle is refused before any of its code
runs, and pickle is used only when both the saver and the loader opt in.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mlops_sdk.errors import FlavorError, PluginError, UnsafeModel
from mlops_sdk.flavors import flavor_for, get_flavor, known_flavors
from mlops_sdk.flavors.base import Flavor
from mlops_sdk.flavors.sklearn import is_trusted_type
from mlops_sdk.hookspecs import hookimpl
from mlops_sdk.plugins import plugin_registered

TESTS = Path(__file__).resolve().parent


# -- models defined at module level, so they can be imported back by reference --------------
def double(X: Any) -> Any:
    """A plain function model."""
    return np.asarray(X) * 2


class PetalRule:
    """A class model: saved by reference, instantiated with no arguments when loaded."""

    def predict(self, X: Any) -> Any:
        return (np.asarray(X)[:, 2] > 2.5).astype(int)


class Scaled:
    """An object with state: only pickle can save it."""

    def __init__(self, k: float) -> None:
        self.k = k

    def predict(self, X: Any) -> Any:
        return np.asarray(X) * self.k


def _plant_marker(path: str) -> Malicious:
    Path(path).write_text("code ran")
    return Malicious(path)


class Malicious:
    """Unpickling this object writes a marker file: proof that loading ran code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def predict(self, X: Any) -> Any:
        return X

    def __reduce__(self) -> tuple[Callable[[str], Malicious], tuple[str]]:
        return (_plant_marker, (self.marker,))


class Branchy(torch.nn.Module):
    """Data-dependent control flow: torch.export cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        if y.sum() > 0:
            return y * 2
        return y


# -- data and trained models ----------------------------------------------------------------
@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    return X, y


def _train_torch(
    model: torch.nn.Module, X: np.ndarray, y: np.ndarray, loss_fn: Any, epochs: int = 40
) -> torch.nn.Module:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add contention
    try:
        torch.manual_seed(0)
        opt = torch.optim.Adam(model.parameters(), lr=0.02)
        xt = torch.tensor(X, dtype=torch.float32)
        for _ in range(epochs):
            opt.zero_grad()
            loss_fn(model(xt), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def _models(iris: Any, diabetes: Any) -> dict[str, tuple[Any, str]]:
    """name → (model, dataset it predicts on)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris
    Xd, yd = diabetes
    torch.manual_seed(0)
    mlp_iris = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    yt = torch.tensor(y)
    _train_torch(mlp_iris, X, y, lambda out, _: torch.nn.functional.cross_entropy(out, yt))
    mlp_diab = torch.nn.Sequential(
        torch.nn.Linear(10, 32), torch.nn.Tanh(), torch.nn.Dropout(0.2), torch.nn.Linear(32, 1)
    )
    ydt = torch.tensor((yd - yd.mean()) / yd.std(), dtype=torch.float32)[:, None]
    _train_torch(mlp_diab, Xd, yd, lambda out, _: torch.nn.functional.mse_loss(out, ydt))
    return {
        "random_forest": (
            RandomForestClassifier(n_estimators=25, random_state=0).fit(X, y),
            "iris",
        ),
        "pipeline": (
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y),
            "iris",
        ),
        "mlp_iris": (mlp_iris, "iris"),
        "mlp_diabetes": (mlp_diab, "diabetes"),
        "function": (double, "iris"),
        "class": (PetalRule, "iris"),
    }


RELOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    from sklearn.datasets import load_diabetes, load_iris
    from mlops_sdk.flavors import get_flavor

    data = {"iris": load_iris(return_X_y=True)[0], "diabetes": load_diabetes(return_X_y=True)[0]}
    for folder in map(Path, sys.argv[1:]):
        info = json.loads((folder / "info.json").read_text())
        flavor = get_flavor(info["flavor"])
        model = flavor.load(folder / "model", info["meta"])
        np.save(folder / "got.npy", np.asarray(flavor.predict(model, data[info["data"]])))
    """
)


@pytest.fixture(scope="module")
def saved(
    iris: Any, diabetes: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """Every model saved in this process, with its predictions here."""
    data = {"iris": iris[0], "diabetes": diabetes[0]}
    root = tmp_path_factory.mktemp("flavors")
    out: dict[str, dict[str, Any]] = {}
    for name, (model, dataset) in _models(iris, diabetes).items():
        folder = root / name
        (folder / "model").mkdir(parents=True)
        flavor = flavor_for(model)
        meta = flavor.save(model, folder / "model", input_example=data[dataset][:5])
        meta = json.loads(json.dumps(meta))  # what a store keeps is JSON
        info = {"flavor": flavor.name, "meta": meta, "data": dataset}
        (folder / "info.json").write_text(json.dumps(info))
        native = (
            model() if isinstance(model, type) else model
        )  # a class is instantiated when loaded
        expected = np.asarray(flavor.predict(native, data[dataset]))
        out[name] = {**info, "folder": folder, "expected": expected, "flavor_obj": flavor}
    return out


@pytest.fixture(scope="module")
def reloaded(saved: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The saved models loaded and run in one fresh interpreter (``got``: its predictions)."""
    out = {name: dict(info) for name, info in saved.items()}
    env = {
        **os.environ,
        "MLOPS_PLUGINS": "",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, *(str(v["folder"]) for v in out.values())],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for v in out.values():
        v["got"] = np.load(v["folder"] / "got.npy")
    return out


@pytest.mark.slow  # one interpreter importing torch and scikit-learn: ~15 s of CPU
@pytest.mark.parametrize(
    ("name", "flavor", "fmt"),
    [
        ("random_forest", "sklearn", "skops"),
        ("pipeline", "sklearn", "skops"),
        ("mlp_iris", "torch", "torch.export"),
        ("mlp_diabetes", "torch", "torch.export"),
        ("function", "pyfunc", "reference"),
        ("class", "pyfunc", "reference"),
    ],
)
def test_saved_model_predicts_the_same_in_a_fresh_process(
    reloaded: dict[str, Any], name: str, flavor: str, fmt: str
) -> None:
    r = reloaded[name]
    assert r["flavor"] == flavor
    assert r["meta"]["format"] == fmt
    assert "pickle" not in json.dumps(r["meta"])
    expected, got = r["expected"], r["got"]
    assert got.shape == expected.shape
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    else:
        assert np.array_equal(got, expected)


def test_torch_files_and_metadata(saved: dict[str, Any]) -> None:
    r = saved["mlp_iris"]
    model_dir = r["folder"] / "model"
    assert (model_dir / "model.pt2").is_file()
    assert (model_dir / "state_dict.safetensors").is_file()
    assert r["meta"]["input"] == {"dtype": "float32", "shape": [-1, 4]}
    assert r["flavor_obj"].requirements(r["meta"]) == [f"torch=={torch.__version__.split('+')[0]}"]
    from safetensors.torch import load_file

    weights = load_file(model_dir / "state_dict.safetensors")
    assert set(weights) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_loaded_torch_module_takes_any_batch_size_and_lists(
    saved: dict[str, Any], iris: Any
) -> None:
    r = saved["mlp_iris"]
    flavor = get_flavor("torch")
    module = flavor.load(r["folder"] / "model", r["meta"])
    X = iris[0]
    one = flavor.predict(module, X[:1])
    assert one.shape == (1, 3) and one.dtype == np.float32
    np.testing.assert_allclose(
        flavor.predict(module, X[:7].tolist()), r["expected"][:7], rtol=1e-6, atol=1e-6
    )


def test_sklearn_metadata_records_library_versions(saved: dict[str, Any]) -> None:
    import sklearn
    import skops

    r = saved["random_forest"]
    libs = r["meta"]["libraries"]
    assert libs["scikit-learn"] == sklearn.__version__
    assert libs["skops"] == skops.__version__
    assert "numpy" in libs
    assert f"scikit-learn=={sklearn.__version__}" in r["flavor_obj"].requirements(r["meta"])


# -- choosing a flavor ----------------------------------------------------------------------
def test_flavor_for_picks_by_priority(iris: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    assert (
        flavor_for(LogisticRegression()).name == "sklearn"
    )  # it has predict(): pyfunc would take it too
    assert flavor_for(torch.nn.Linear(2, 2)).name == "torch"
    assert flavor_for(double).name == "pyfunc"
    assert flavor_for(Scaled(2.0)).name == "pyfunc"
    assert flavor_for(double, "pyfunc").name == "pyfunc"
    assert set(known_flavors()) >= {"sklearn", "torch", "pyfunc"}


@pytest.mark.parametrize("obj", [42, "a string", object(), [1, 2, 3]])
def test_unsupported_object_is_refused_naming_its_type(obj: Any) -> None:
    with pytest.raises(FlavorError) as err:
        flavor_for(obj)
    assert type(obj).__qualname__ in str(err.value)
    assert "sklearn" in str(err.value) and "pyfunc" in str(err.value)


def test_named_flavor_must_exist_and_fit() -> None:
    with pytest.raises(FlavorError, match=r"'keras'.*known flavors: pyfunc, sklearn, torch"):
        get_flavor("keras")
    with pytest.raises(FlavorError, match="'torch' flavor cannot save"):
        flavor_for(double, "torch")


def test_choosing_a_flavor_imports_no_ml_library(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from mlops_sdk.flavors import flavor_for
        class Model:
            def predict(self, X):
                return X
        assert flavor_for(Model()).name == "pyfunc"
        assert flavor_for(len).name == "pyfunc"
        heavy = {"torch", "sklearn", "skops", "pandas", "numpy"} & {m.split(".")[0] for m in sys.modules}
        assert not heavy, heavy
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MLOPS_PLUGINS": ""},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


class _DictFlavor(Flavor):
    """A third-party flavor: lookup tables stored as JSON."""

    name = "lookup"
    priority = 50

    def recognizes(self, obj: Any) -> bool:
        return isinstance(obj, dict)

    def save(
        self, obj: Any, path: Path, *, input_example: Any = None, allow_pickle: bool = False
    ) -> dict[str, Any]:
        (path / "table.json").write_text(json.dumps(obj))
        return {"format": "json"}

    def load(self, path: Path, meta: dict[str, Any], *, allow_pickle: bool = False) -> Any:
        return json.loads((path / "table.json").read_text())

    def predict(self, model: Any, data: Any) -> Any:
        return [model.get(str(x)) for x in data]


class _LookupPlugin:
    @hookimpl
    def mlops_register_backends(self, register: Any) -> None:
        register.flavor("lookup", _DictFlavor, description="dict lookup tables")


class _BrokenPlugin:
    @hookimpl
    def mlops_register_backends(self, register: Any) -> None:
        register.flavor("broken", dict, description="not a Flavor")


def test_plugin_flavor_is_found_and_used(tmp_path: Path) -> None:
    with plugin_registered(_LookupPlugin(), "lookup-plugin"):
        flavor = flavor_for({"a": 1})
        assert flavor.name == "lookup"
        meta = flavor.save({"a": 1}, tmp_path)
        assert flavor.predict(flavor.load(tmp_path, meta), ["a", "b"]) == [1, None]


def test_broken_plugin_flavor_is_named_not_skipped() -> None:
    with plugin_registered(_BrokenPlugin(), "broken-plugin"):
        for call in (lambda: get_flavor("broken"), lambda: flavor_for(double)):
            with pytest.raises(
                PluginError,
                match=r"'broken-plugin'.*'broken'.*not a mlops_sdk\.flavors\.base\.Flavor",
            ):
                call()


# -- scikit-learn: skops and the trust policy -----------------------------------------------
def _log_pipeline(iris: Any) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    return make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=500)).fit(*iris)


def _rewrite_zip(file: Path, edit: Callable[[str, bytes], bytes | None]) -> None:
    """Rewrite the zip ``file`` in place; ``edit(name, data)`` returns new data (None: keep)."""
    with zipfile.ZipFile(file) as zin:
        items = [(info, zin.read(info.filename)) for info in zin.infolist()]
    with zipfile.ZipFile(file, "w") as zout:
        for info, data in items:
            zout.writestr(info, edit(info.filename, data) or data)


@pytest.mark.parametrize(("module", "name"), [("os", "system"), ("builtins", "eval")])
def test_tampered_skops_file_is_refused(iris: Any, tmp_path: Path, module: str, name: str) -> None:
    flavor = get_flavor("sklearn")
    meta = flavor.save(_log_pipeline(iris), tmp_path)
    assert meta["format"] == "skops"
    flavor.load(tmp_path, meta)  # untampered: numpy.log1p is trusted

    def swap(filename: str, data: bytes) -> bytes | None:
        if filename != "schema.json":
            return None
        text, n = re.subn(
            r'"__class__": "log1p",(\s*)"__module__": "numpy"',
            lambda m: f'"__class__": "{name}",{m.group(1)}"__module__": "{module}"',
            data.decode(),
        )
        assert n == 1
        return text.encode()

    _rewrite_zip(tmp_path / "model.skops", swap)
    with pytest.raises(UnsafeModel, match=rf"{module}\.{name}"):
        flavor.load(tmp_path, meta)
    with pytest.raises(UnsafeModel):  # allow_pickle does not widen the skops policy
        flavor.load(tmp_path, meta, allow_pickle=True)


def test_trust_policy() -> None:
    assert is_trusted_type("sklearn.tree._tree.Tree")
    assert is_trusted_type("numpy.float64")
    assert is_trusted_type("builtins.slice")
    for name in (
        "builtins.eval",
        "builtins.exec",
        "os.system",
        "numpy.load",
        "numpy.testing._private.utils.runstring",
        "sklearnx.Model",
        "scipy.io.loadmat",
        "__main__.Model",
        "sklearn.<lambda>",
    ):
        assert not is_trusted_type(name), name


def test_sklearn_model_outside_the_policy_needs_pickle_both_ways(iris: Any, tmp_path: Path) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.tree import DecisionTreeClassifier

    model = make_pipeline(FunctionTransformer(double), DecisionTreeClassifier(random_state=0)).fit(
        *iris
    )
    flavor = flavor_for(model)
    with pytest.raises(FlavorError, match=r"test_flavors\.double.*allow_pickle=True"):
        flavor.save(model, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written left behind
    meta = flavor.save(model, tmp_path, allow_pickle=True)
    assert meta["format"] == "pickle" and "test_flavors.double" in meta["reason"]
    with pytest.raises(UnsafeModel, match="allow_pickle=True"):
        flavor.load(tmp_path, meta)
    loaded = flavor.load(tmp_path, meta, allow_pickle=True)
    assert np.array_equal(flavor.predict(loaded, iris[0]), model.predict(iris[0]))


def test_pickle_disguised_as_skops_is_not_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    folder = tmp_path / "model"
    folder.mkdir()
    import pickle

    (folder / "model.skops").write_bytes(pickle.dumps(Malicious(str(marker))))
    with pytest.raises(FlavorError, match="not a readable skops model"):
        get_flavor("sklearn").load(folder, {"format": "skops"}, allow_pickle=True)
    assert not marker.exists()


# -- the malicious pickle --------------------------------------------------------------------
def test_malicious_pickle_runs_only_with_allow_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    folder = tmp_path / "model"
    folder.mkdir()
    flavor = flavor_for(Malicious(str(marker)))
    assert flavor.name == "pyfunc"
    with pytest.raises(FlavorError, match="allow_pickle=True"):
        flavor.save(Malicious(str(marker)), folder)
    meta = flavor.save(Malicious(str(marker)), folder, allow_pickle=True)
    assert meta["format"] == "pickle"
    assert not marker.exists()  # saving ran nothing

    with pytest.raises(UnsafeModel, match="allow_pickle=True"):
        flavor.load(folder, meta)
    assert not marker.exists()  # refused before a byte was unpickled

    model = flavor.load(folder, meta, allow_pickle=True)
    assert marker.exists()  # the opt-in really does run the file's code
    assert isinstance(model, Malicious)


# -- torch ---------------------------------------------------------------------------------
def test_torch_needs_an_input_example(tmp_path: Path) -> None:
    with pytest.raises(FlavorError, match="input_example"):
        get_flavor("torch").save(torch.nn.Linear(4, 3), tmp_path)


def test_unexportable_torch_model_needs_pickle_both_ways(iris: Any, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Branchy().eval()
    flavor = get_flavor("torch")
    X = iris[0][:10]
    with pytest.raises(
        FlavorError, match=r"(?s)torch\.export could not export Branchy.*allow_pickle=True"
    ):
        flavor.save(model, tmp_path, input_example=X)
    meta = flavor.save(model, tmp_path, input_example=X, allow_pickle=True)
    assert meta["format"] == "pickle"
    with pytest.raises(UnsafeModel):
        flavor.load(tmp_path, meta)
    loaded = flavor.load(tmp_path, meta, allow_pickle=True)
    np.testing.assert_allclose(flavor.predict(loaded, X), flavor.predict(model, X))


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
    ).eval()
    folder = tmp_path / "model"
    folder.mkdir()
    meta = get_flavor("torch").save(model, folder, input_example=torch.randn(4, 4))
    return folder, meta


def _edit_pt2(
    folder: Path, edit: Callable[[str, bytes], bytes | None], add: tuple[str, bytes] | None = None
) -> None:
    file = folder / "model.pt2"
    with zipfile.ZipFile(file) as zin:
        items = [(info.filename, zin.read(info.filename)) for info in zin.infolist()]
    root = items[0][0].split("/", 1)[0]
    with zipfile.ZipFile(file, "w") as zout:
        for name, data in items:
            zout.writestr(name, edit(name.split("/", 1)[1], data) or data)
        if add is not None:
            zout.writestr(f"{root}/{add[0]}", add[1])


def test_pt2_with_malicious_sample_inputs_is_refused_before_unpickling(
    exported: Any, tmp_path: Path
) -> None:
    """torch.export.load would retry these with weights_only=False and run the pickle."""
    folder, meta = exported
    marker = tmp_path / "marker"
    buf = io.BytesIO()
    torch.save(Malicious(str(marker)), buf)
    _edit_pt2(
        folder, lambda name, _: buf.getvalue() if name.startswith("data/sample_inputs/") else None
    )
    with pytest.raises(UnsafeModel, match="sample_inputs"):
        get_flavor("torch").load(folder, meta)
    assert not marker.exists()


def test_pt2_with_pickled_weights_is_refused(exported: Any) -> None:
    folder, meta = exported

    def flag(name: str, data: bytes) -> bytes | None:
        if not name.endswith("_weights_config.json"):
            return None
        config = json.loads(data)
        next(iter(config["config"].values()))["use_pickle"] = True
        return json.dumps(config).encode()

    _edit_pt2(folder, flag)
    with pytest.raises(UnsafeModel, match="pickled or custom object"):
        get_flavor("torch").load(folder, meta)


def test_pt2_graph_calling_a_python_function_is_refused(exported: Any) -> None:
    folder, meta = exported

    def retarget(name: str, data: bytes) -> bytes | None:
        if not name.startswith("models/"):
            return None
        return data.replace(b'"torch.ops.aten.relu.default"', b'"torch.os.system"')

    _edit_pt2(folder, retarget)
    with pytest.raises(UnsafeModel, match=r"torch\.os\.system"):
        get_flavor("torch").load(folder, meta)


def test_pt2_with_compiled_code_is_refused(exported: Any) -> None:
    folder, meta = exported
    _edit_pt2(folder, lambda *_: None, add=("data/aotinductor/model/model.so", b"\x7fELF"))
    with pytest.raises(UnsafeModel, match="aotinductor"):
        get_flavor("torch").load(folder, meta)


def test_torch_pickle_format_needs_allow_pickle(exported: Any) -> None:
    folder, meta = exported
    with pytest.raises(UnsafeModel):
        get_flavor("torch").load(folder, {**meta, "format": "pickle"})


# -- pyfunc --------------------------------------------------------------------------------
def _local_function() -> Callable[[Any], Any]:
    def predict(X: Any) -> Any:
        return X

    return predict


def _main_function(X: Any) -> Any:
    return X


_main_function.__module__ = "__main__"


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (lambda X: X, "lambda"),
        (_local_function(), "inside a function"),
        (_main_function, "__main__"),
        (Scaled(2.0), "only pickle can save"),
    ],
    ids=["lambda", "local", "main", "stateful"],
)
def test_pyfunc_refuses_what_it_cannot_import_back(
    obj: Any, reason: str, tmp_path: Path, iris: Any
) -> None:
    flavor = get_flavor("pyfunc")
    with pytest.raises(FlavorError, match=reason):
        flavor.save(obj, tmp_path)
    meta = flavor.save(obj, tmp_path, allow_pickle=True)
    assert meta["format"] == "pickle"
    with pytest.raises(UnsafeModel):
        flavor.load(tmp_path, meta)
    loaded = flavor.load(tmp_path, meta, allow_pickle=True)
    np.testing.assert_array_equal(
        flavor.predict(loaded, iris[0][:3]), flavor.predict(obj, iris[0][:3])
    )


@pytest.mark.parametrize(
    "target",
    [
        "os:system",
        "subprocess:run",
        "builtins:eval",
        "test_flavors:np",
        "test_flavors:__builtins__",
        "no colon",
    ],
)
def test_pyfunc_reference_to_something_else_is_refused(target: str, tmp_path: Path) -> None:
    with pytest.raises((UnsafeModel, FlavorError)):
        get_flavor("pyfunc").load(tmp_path, {"format": "reference", "target": target})


def test_pyfunc_reference_to_code_that_is_not_installed(tmp_path: Path) -> None:
    with pytest.raises(
        FlavorError, match=r"cannot import 'no_such_package_xyz\.mod'.*No module named"
    ):
        get_flavor("pyfunc").load(
            tmp_path, {"format": "reference", "target": "no_such_package_xyz.mod:predict"}
        )


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    for name in ("sklearn", "torch", "pyfunc"):
        with pytest.raises(FlavorError, match="unknown format"):
            get_flavor(name).load(tmp_path, {"format": "joblib-zip"})
