"""Model benchmark: save, load and first predict, mlops-sdk vs MLflow, in the same run.

Run from the repository root:

    python bench/model_bench.py                  # full run (about 6-15 minutes on 2 shared cores)
    python bench/model_bench.py --quick          # fewer repeats, a smoke test
    python bench/model_bench.py --out bench/results/models.json
    python bench/model_bench.py --models rf      # one model: rf, mlp
    python bench/model_bench.py --report bench/results/models.json   # the tables of a saved run

Two models, both trained on scikit-learn's digits data (1,797 images of 8x8
pixels, 64 features, 10 classes; bundled with scikit-learn, no download):

* ``rf``: ``RandomForestClassifier(n_estimators=100, random_state=0)``;
* ``mlp``: a small torch MLP, 64 → 128 → 128 → 10 (ReLU), trained for 60
  full-batch Adam steps with ``torch.manual_seed(0)``.

What each tool does, with its defaults (both are pickle-free by default):

* mlops-sdk: ``run.log_model(model, name, input_example=X[:5])`` inside
  ``exp.start_run()``; ``ws.model(name).version(v).load()``; ``mv.predict(X)``
  (checks the input against the signature first). scikit-learn is saved with
  skops, torch with ``torch.export`` (plus a safetensors state dict).
* MLflow: ``mlflow.sklearn.log_model`` / ``mlflow.pytorch.log_model(model,
  name=name, input_example=X[:5])`` inside ``mlflow.start_run()``, on a SQLite
  tracking store with a local artifact folder; ``load_model(model_info.model_uri)``
  (``models:/<model id>``); the native ``predict`` / ``module(tensor)``. MLflow
  3.x's defaults are skops for scikit-learn and ``pt2`` (``torch.export``) for
  PyTorch, so both tools write the same kind of file. MLflow refuses to save
  a forest with skops unless ``skops_trusted_types=["sklearn.tree._tree.Tree"]``
  is passed, so it is (our loader decides trust by its own policy). A second MLflow variant
  passes ``pip_requirements=[…]`` (which skips MLflow's requirement inference,
  a subprocess that imports the model); a second MLflow load variant loads the
  model's local artifact folder directly (no tracking-store lookup).

Method
------
* Each (tool, model) pair runs in its own fresh Python process; the two tools
  are never imported into the same process.
* **Save**: ``N`` repeats, each into a fresh store (a new SQLite file and a new
  blob/artifact folder, created untimed), so no tool can skip writing content it
  already holds. The first repeat is also reported alone: it is what a training
  job pays (lazy imports of skops, torch.export… included).
* **In-process load**: ``N`` loads of the last saved version in the process
  that saved it, each followed by the first predict on the 297 test rows.
* **Cold load**: ``K`` fresh processes per variant. Each imports numpy and the
  model's libraries (scikit-learn and ``skops.io``, or torch and
  ``torch.export``: the same cost for both tools), then the tool, then times the
  load (opening the store included) and the first predict.
  "start → first prediction" is measured from just before the process is
  spawned (``CLOCK_MONOTONIC``, shared by all processes) to the prediction.
  Our model cache (``.mlops/cache/models/<id>``, filled by ``log_model``) is
  either kept (the same machine that trained, or a warm serving box) or emptied
  before each process (a new machine: files are copied from the store and
  every sha256 checked). The OS page cache is warm in every case.
* Every load is followed by a check that the predictions equal the original
  model's (labels for the forest, logits within 1e-5 for the MLP), so no tool
  can win by loading something else.
* ``ratio`` = MLflow ÷ mlops-sdk: above 1 means mlops-sdk is faster.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import fmt_ratio as ratio
from _timing import fmt_seconds, machine_info, markdown_table, write_json

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent

FULL = {"save_repeats": 5, "load_repeats": 9, "cold_repeats": 7, "worker_timeout_s": 600}
QUICK = {"save_repeats": 3, "load_repeats": 3, "cold_repeats": 2, "worker_timeout_s": 300}

MODELS = ("rf", "mlp")
SAVE_TOOLS = ("mlops", "mlflow", "mlflow_reqs")
COLD_VARIANTS = ("mlops", "mlops_nocache", "mlflow", "mlflow_path")
TOOL_MODULES = {"mlops": "mlops_sdk", "mlflow": "mlflow"}
N_TRAIN = 1500  # digits rows 0..1499 train, 1500..1796 test (297 rows)


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


# ============================================================================= models and data
def make_data(data_dir: Path) -> None:
    """Write the digits split as .npy files (float64 features, int labels)."""
    import numpy as np
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype("float64")
    data_dir.mkdir(parents=True, exist_ok=True)
    np.save(data_dir / "X_train.npy", X[:N_TRAIN])
    np.save(data_dir / "y_train.npy", y[:N_TRAIN])
    np.save(data_dir / "X_test.npy", X[N_TRAIN:])


def train(kind: str, data_dir: Path) -> tuple[Any, Any, Any]:
    """(model, input example, test features in the dtype the model takes)."""
    import numpy as np

    X = np.load(data_dir / "X_train.npy")
    y = np.load(data_dir / "y_train.npy")
    X_test = np.load(data_dir / "X_test.npy")
    if kind == "rf":
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(X, y)
        return model, X[:5], X_test
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(X.astype("float32")), torch.from_numpy(y.astype("int64"))
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xt), yt)
        loss.backward()
        opt.step()
    net.eval()
    return net, X[:5].astype("float32"), X_test.astype("float32")


def native_predict(kind: str, model: Any, X: Any) -> Any:
    """What a user of the native object calls (MLflow's load returns the native object)."""
    if kind == "rf":
        return model.predict(X)
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(X)).detach().numpy()


def same_predictions(kind: str, got: Any, expected: Any) -> bool:
    import numpy as np

    got = np.asarray(got)
    if got.shape != expected.shape:
        return False
    if kind == "rf":
        return bool((got == expected).all())
    return bool(np.allclose(got, expected, atol=1e-5, rtol=1e-5))


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ============================================================================= drivers
class Ours:
    """mlops-sdk: a workspace per store."""

    def __init__(self, kind: str) -> None:
        import mlops_sdk as mlops

        self.mlops = mlops
        self.kind = kind
        self.ws: Any = None

    @staticmethod
    def version() -> str:
        import mlops_sdk

        return mlops_sdk.__version__

    def open_store(self, root: Path) -> None:
        if self.ws is not None:
            self.ws.close()
        self.ws = self.mlops.Workspace.open(root)
        self.root = root

    def save(self, model: Any, example: Any) -> float:
        with self.ws.experiment("bench").start_run() as run:
            t0 = time.perf_counter()
            mv = run.log_model(model, self.kind, input_example=example)
            dt = time.perf_counter() - t0
        self.saved = mv.version
        return dt

    def load_and_predict(self, X: Any) -> tuple[float, float, Any]:
        t0 = time.perf_counter()
        mv = self.ws.model(self.kind).version(self.saved)
        mv.load()
        t1 = time.perf_counter()
        pred = mv.predict(X)
        return t1 - t0, time.perf_counter() - t1, pred

    def ref(self) -> dict[str, Any]:
        from mlops_sdk.model import cache_root

        mv = self.ws.model(self.kind).version(self.saved)
        return {
            "root": str(self.root),
            "name": self.kind,
            "version": self.saved,
            "cache_dir": str(cache_root(self.ws)),
            "size_bytes": sum(f.size for f in mv.files()),
        }


class Theirs:
    """MLflow: a SQLite tracking store and a local artifact folder per store."""

    def __init__(self, kind: str, explicit_requirements: bool) -> None:
        import mlflow

        self.mlflow = mlflow
        self.kind = kind
        if kind == "rf":
            import mlflow.sklearn

            self.flavor: Any = mlflow.sklearn
        else:
            import mlflow.pytorch

            self.flavor = mlflow.pytorch
        self.extra: dict[str, Any] = {}
        if kind == "rf":
            # MLflow's skops save re-loads the file with the types the caller trusts and refuses a
            # forest unless the tree type is named: the least a user has to pass.
            self.extra["skops_trusted_types"] = ["sklearn.tree._tree.Tree"]
        if explicit_requirements:
            self.extra["pip_requirements"] = requirement_lines(kind)

    @staticmethod
    def version() -> str:
        import mlflow

        return mlflow.__version__

    def open_store(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
        self.mlflow.set_tracking_uri(self.tracking_uri)
        self.experiment_id = self.mlflow.create_experiment("bench", artifact_location=(root / "artifacts").as_uri())

    def save(self, model: Any, example: Any) -> float:
        with self.mlflow.start_run(experiment_id=self.experiment_id):
            t0 = time.perf_counter()
            info = self.flavor.log_model(model, name=self.kind, input_example=example, **self.extra)
            dt = time.perf_counter() - t0
        self.info = info
        return dt

    def load_and_predict(self, X: Any) -> tuple[float, float, Any]:
        t0 = time.perf_counter()
        model = self.flavor.load_model(self.info.model_uri)
        t1 = time.perf_counter()
        pred = native_predict(self.kind, model, X)
        return t1 - t0, time.perf_counter() - t1, pred

    def ref(self) -> dict[str, Any]:
        from urllib.parse import unquote, urlparse

        location = self.mlflow.get_logged_model(self.info.model_id).artifact_location
        local = Path(unquote(urlparse(location).path))
        return {
            "tracking_uri": self.tracking_uri,
            "model_uri": self.info.model_uri,
            "local_path": str(local),
            "size_bytes": folder_size(local),
        }


def requirement_lines(kind: str) -> list[str]:
    from importlib.metadata import version

    libs = ["scikit-learn", "skops", "numpy", "scipy"] if kind == "rf" else ["torch", "numpy"]
    return [f"{lib}=={version(lib)}" for lib in libs]


def save_worker(tool: str, kind: str, cfg: dict[str, Any], workdir: Path, data_dir: Path) -> dict[str, Any]:
    """Train once, save N times into fresh stores, then load N times in this process."""
    import numpy as np

    model, example, X_test = train(kind, data_dir)
    expected = native_predict(kind, model, X_test)
    np.save(workdir / "expected.npy", expected)
    driver: Any = Ours(kind) if tool == "mlops" else Theirs(kind, explicit_requirements=tool == "mlflow_reqs")
    saves: list[float] = []
    for i in range(cfg["save_repeats"]):
        driver.open_store(workdir / f"store-{i}")
        saves.append(driver.save(model, example))
    loads: list[float] = []
    predicts: list[float] = []
    for _ in range(cfg["load_repeats"]):
        load_s, predict_s, pred = driver.load_and_predict(X_test)
        if not same_predictions(kind, pred, expected):
            raise AssertionError(f"{tool}: the loaded {kind} model predicts differently from the original")
        loads.append(load_s)
        predicts.append(predict_s)
    return {
        "tool": tool,
        "model": kind,
        "version": driver.version(),
        "save_first_s": saves[0],
        "save_s": saves,
        "save_median_s": _median(saves[1:] or saves),
        "load_s": loads,
        "load_median_s": _median(loads),
        "predict_s": predicts,
        "predict_median_s": _median(predicts),
        "ref": driver.ref(),
    }


def cold_worker(variant: str, kind: str, ref: dict[str, Any], data_dir: Path, expected_file: Path, spawned: float) -> dict[str, Any]:
    """One cold start: libraries, tool, load, first predict; every phase timed."""
    t0 = time.monotonic()
    import numpy as np

    if kind == "rf":
        import sklearn.ensemble  # noqa: F401
        import skops.io  # noqa: F401  (both tools load forests with skops)
    else:
        import torch
        import torch.export  # noqa: F401  (both tools load the MLP with torch.export)
    t1 = time.monotonic()
    if variant.startswith("mlops"):
        import mlops_sdk as mlops
    else:
        import mlflow

        if kind == "rf":
            import mlflow.sklearn as flavor
        else:
            import mlflow.pytorch as flavor
    t2 = time.monotonic()
    X = np.load(data_dir / "X_test.npy")
    if kind == "mlp":
        X = X.astype("float32")
    t3 = time.monotonic()
    if variant.startswith("mlops"):
        ws = mlops.Workspace.open(ref["root"])
        mv = ws.model(ref["name"]).version(ref["version"])
        mv.load()
        t4 = time.monotonic()
        pred = mv.predict(X)
    else:
        if variant == "mlflow":
            mlflow.set_tracking_uri(ref["tracking_uri"])
            model = flavor.load_model(ref["model_uri"])
        else:
            model = flavor.load_model(ref["local_path"])
        t4 = time.monotonic()
        pred = native_predict(kind, model, X)
    t5 = time.monotonic()
    if not same_predictions(kind, pred, np.load(expected_file)):
        raise AssertionError(f"{variant}: the cold-loaded {kind} model predicts differently from the original")
    return {
        "variant": variant,
        "model": kind,
        "interpreter_start_s": t0 - spawned,
        "import_library_s": t1 - t0,
        "import_tool_s": t2 - t1,
        "load_s": t4 - t3,
        "predict_s": t5 - t4,
        "load_predict_s": t5 - t3,
        "to_first_prediction_s": t5 - spawned,
    }


# ============================================================================= orchestration
def tool_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("MLFLOW_TRACKING_URI", "MLOPS_TRACKING", "MLOPS_STORAGE", "MLOPS_DEPLOY", "MLOPS_COMPUTE"):
        env.pop(key, None)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    env["GIT_PYTHON_REFRESH"] = "quiet"
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _spawn(args: list[str], cwd: Path, timeout: float) -> tuple[dict[str, Any] | None, str]:
    result_file = cwd / f"result-{time.monotonic_ns()}.json"
    cmd = [sys.executable, str(HERE), *args, "--result-file", str(result_file), "--spawned", repr(time.monotonic())]
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return None, f"timed out after {timeout} s\n{err[-4000:]}"
    if proc.returncode != 0 or not result_file.exists():
        return None, f"exit {proc.returncode}\n{(proc.stderr or '')[-6000:]}{(proc.stdout or '')[-1000:]}"
    data = json.loads(result_file.read_text())
    result_file.unlink()
    return data, ""


def run_model(kind: str, cfg: dict[str, Any], available: dict[str, bool], data_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"save": {}, "cold": {}, "errors": {}, "skipped": {}}
    workdirs: list[Path] = []
    try:
        for tool in SAVE_TOOLS:
            base = "mlops" if tool == "mlops" else "mlflow"
            if not available[base]:
                out["skipped"][tool] = f"{TOOL_MODULES[base]} is not installed"
                continue
            workdir = Path(tempfile.mkdtemp(prefix=f"mlops-bench-model-{kind}-{tool}-")).resolve()
            workdirs.append(workdir)
            print(f"  {kind:<4} save+load {tool:<12}", end="", flush=True)
            t0 = time.perf_counter()
            res, err = _spawn(
                ["--worker", "save", tool, kind, "--config", json.dumps(cfg), "--workdir", str(workdir), "--data", str(data_dir)],
                workdir,
                cfg["worker_timeout_s"],
            )
            if res is None:
                print(" ERROR")
                out["errors"][f"save/{tool}"] = err
                continue
            print(f" ok ({time.perf_counter() - t0:.1f} s)")
            res["workdir"] = str(workdir)
            out["save"][tool] = res
        for variant in COLD_VARIANTS:
            source = "mlops" if variant.startswith("mlops") else "mlflow"
            if source not in out["save"]:
                continue
            saved = out["save"][source]
            workdir = Path(saved["workdir"])
            print(f"  {kind:<4} cold load {variant:<13}", end="", flush=True)
            samples: list[dict[str, Any]] = []
            for _ in range(cfg["cold_repeats"]):
                if variant == "mlops_nocache":
                    _force_rmtree(Path(saved["ref"]["cache_dir"]))
                res, err = _spawn(
                    [
                        "--worker", "cold", variant, kind,
                        "--ref", json.dumps(saved["ref"]),
                        "--data", str(data_dir),
                        "--expected", str(workdir / "expected.npy"),
                    ],
                    workdir,
                    cfg["worker_timeout_s"],
                )
                if res is None:
                    out["errors"][f"cold/{variant}"] = err
                    break
                samples.append(res)
            print(f" {'ok' if len(samples) == cfg['cold_repeats'] else 'ERROR'}")
            if samples:
                fields = [k for k in samples[0] if k.endswith("_s")]
                out["cold"][variant] = {
                    "samples": samples,
                    **{f"{k[:-2]}_median_s": _median([s[k] for s in samples]) for k in fields},
                }
    finally:
        for workdir in workdirs:
            _force_rmtree(workdir)
    return out


def _force_rmtree(path: Path) -> None:
    """Remove a tree even where files or folders were made read-only (our model cache)."""
    if not path.exists():
        return
    for p in [path, *path.rglob("*")]:
        try:
            if not p.is_symlink():
                p.chmod(0o700 if p.is_dir() else 0o600)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)


# ============================================================================= report
def _get(res: dict[str, Any], *path: str) -> float | None:
    node: Any = res
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, (int, float)) else None


def _cold(cold: dict[str, Any], variant: str) -> float | None:
    """Median over the cold processes of load + first predict (what serving pays before answering)."""
    samples = cold.get(variant, {}).get("samples") or []
    return _median([s["load_s"] + s["predict_s"] for s in samples])


def _ms(value: float | None) -> str:
    return fmt_seconds(value, "ms")


def build_rows(kind: str, res: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []

    def row(label: str, ours: float | None, theirs: float | None) -> None:
        rows.append([label, _ms(ours), _ms(theirs), ratio(theirs, ours)])

    save = res["save"]
    cold = res["cold"]
    for field, label in (("save_first_s", "first save in a fresh process"), ("save_median_s", "save, median of repeats 2..N")):
        row(f"{label}: log_model", _get(save, "mlops", field), _get(save, "mlflow", field))
        row(f"{label}: vs MLflow with pip_requirements given", _get(save, "mlops", field), _get(save, "mlflow_reqs", field))
    row("load in-process (median)", _get(save, "mlops", "load_median_s"), _get(save, "mlflow", "load_median_s"))
    row("first predict after in-process load (median)", _get(save, "mlops", "predict_median_s"), _get(save, "mlflow", "predict_median_s"))
    row("cold load, fresh process (our cache filled; MLflow models:/ URI)", _get(cold, "mlops", "load_median_s"), _get(cold, "mlflow", "load_median_s"))
    row("cold load, fresh process (our cache empty; MLflow models:/ URI)", _get(cold, "mlops_nocache", "load_median_s"), _get(cold, "mlflow", "load_median_s"))
    row("cold load, fresh process (our cache filled; MLflow local folder)", _get(cold, "mlops", "load_median_s"), _get(cold, "mlflow_path", "load_median_s"))
    row("cold first predict (our cache filled; MLflow models:/ URI)", _get(cold, "mlops", "predict_median_s"), _get(cold, "mlflow", "predict_median_s"))
    row("cold load + first predict (our cache filled; MLflow models:/ URI)", _cold(cold, "mlops"), _cold(cold, "mlflow"))
    row("cold load + first predict (our cache filled; MLflow local folder)", _cold(cold, "mlops"), _cold(cold, "mlflow_path"))
    row("cold `import` of the tool (library already imported)", _get(cold, "mlops", "import_tool_median_s"), _get(cold, "mlflow", "import_tool_median_s"))
    row("cold start → first prediction, whole process (cache filled; models:/)", _get(cold, "mlops", "to_first_prediction_median_s"), _get(cold, "mlflow", "to_first_prediction_median_s"))
    row("cold start → first prediction, whole process (cache empty; models:/)", _get(cold, "mlops_nocache", "to_first_prediction_median_s"), _get(cold, "mlflow", "to_first_prediction_median_s"))
    ours_size = _get(save, "mlops", "ref", "size_bytes")
    theirs_size = _get(save, "mlflow", "ref", "size_bytes")
    rows.append(
        [
            "size of the saved model files",
            f"{ours_size / 1e6:.2f} MB" if ours_size else "n/a",
            f"{theirs_size / 1e6:.2f} MB" if theirs_size else "n/a",
            "",
        ]
    )
    return rows


def targets(results: dict[str, Any]) -> list[list[str]]:
    out: list[list[str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("PASS" if ok else "FAIL")

    for kind, res in results.items():
        save, cold = res["save"], res["cold"]
        for label, field in (("first save", "save_first_s"), ("save (median)", "save_median_s")):
            ours, theirs = _get(save, "mlops", field), _get(save, "mlflow", field)
            ok = None if ours is None or theirs is None else ours <= theirs
            out.append([f"{kind}: {label} no slower than MLflow", ratio(theirs, ours), verdict(ok)])
        for label, ours, theirs in (
            ("cold load ≥ 2x faster (cache filled, models:/)", _get(cold, "mlops", "load_median_s"), _get(cold, "mlflow", "load_median_s")),
            ("cold load ≥ 2x faster (cache empty, models:/)", _get(cold, "mlops_nocache", "load_median_s"), _get(cold, "mlflow", "load_median_s")),
            ("cold load + first predict ≥ 2x faster (cache filled, models:/)", _cold(cold, "mlops"), _cold(cold, "mlflow")),
            ("in-process load ≥ 2x faster", _get(save, "mlops", "load_median_s"), _get(save, "mlflow", "load_median_s")),
        ):
            ok = None if ours is None or theirs is None else theirs / ours >= 2
            out.append([f"{kind}: {label}", ratio(theirs, ours), verdict(ok)])
    return out


def report(meta: dict[str, Any], results: dict[str, Any]) -> str:
    m = meta["machine"]
    v = meta["versions"]
    lines = [
        f"Model benchmark — {m['date']}, {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, "
        f"mlops-sdk {v.get('mlops', 'n/a')}, MLflow {v.get('mlflow', 'n/a')}, scikit-learn {v.get('scikit-learn', 'n/a')}, "
        f"torch {v.get('torch', 'n/a')}, skops {v.get('skops', 'n/a')}; mode: {meta['mode']}",
        "",
        "ratio = MLflow ÷ mlops-sdk (above 1: mlops-sdk is faster)",
    ]
    titles = {"rf": "RandomForestClassifier (100 trees, digits)", "mlp": "torch MLP 64-128-128-10 (digits)"}
    for kind, res in results.items():
        lines += ["", f"### {titles[kind]}", "", markdown_table(["operation", "mlops-sdk", "MLflow", "ratio"], build_rows(kind, res))]
    lines += ["", markdown_table(["target", "measured", "verdict"], targets(results))]
    for kind, res in results.items():
        for key, why in res["skipped"].items():
            lines.append(f"skipped {kind}/{key}: {why}")
        for key, err in res["errors"].items():
            lines += ["", f"--- error {kind}/{key} ---", err]
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for key, dist in (("mlops", "mlops-sdk"), ("mlflow", "mlflow"), ("scikit-learn", "scikit-learn"), ("torch", "torch"), ("skops", "skops"), ("numpy", "numpy")):
        with contextlib.suppress(PackageNotFoundError):
            out[key] = version(dist)
    return out


def _git_commit() -> str | None:
    try:
        proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return proc.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    p.add_argument("--out", help="write results as JSON to this path")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: rf,mlp")
    p.add_argument("--report", metavar="JSON", help="print the tables of an earlier --out file and exit")
    # internal: worker mode
    p.add_argument("--worker", nargs=3, metavar=("MODE", "TOOL", "MODEL"), help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--ref", help=argparse.SUPPRESS)
    p.add_argument("--expected", help=argparse.SUPPRESS)
    p.add_argument("--result-file", help=argparse.SUPPRESS)
    p.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.worker:
        mode, tool, kind = a.worker
        if mode == "save":
            res = save_worker(tool, kind, json.loads(a.config), Path(a.workdir), Path(a.data))
        else:
            res = cold_worker(tool, kind, json.loads(a.ref), Path(a.data), Path(a.expected), a.spawned)
        Path(a.result_file).write_text(json.dumps(res))
        return 0

    if a.report:
        saved = json.loads(Path(a.report).read_text())
        print(report(saved["meta"], saved["results"]))
        return 0
    kinds = [k.strip() for k in a.models.split(",") if k.strip()]
    unknown = set(kinds) - set(MODELS)
    if unknown:
        p.error(f"unknown model(s): {', '.join(sorted(unknown))}")
    cfg = dict(QUICK if a.quick else FULL)
    available = {k: tool_available(v) for k, v in TOOL_MODULES.items()}
    if "mlp" in kinds and not tool_available("torch"):
        print("torch is not installed: skipping the MLP (pip install -c constraints.txt torch)")
        kinds.remove("mlp")
    print(f"mlops-sdk model benchmark ({'quick' if a.quick else 'full'}), python {sys.executable}")
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    data_dir = Path(tempfile.mkdtemp(prefix="mlops-bench-model-data-")).resolve()
    try:
        make_data(data_dir)
        for kind in kinds:
            results[kind] = run_model(kind, cfg, available, data_dir)
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    meta = {
        "machine": machine_info(),
        "mode": "quick" if a.quick else "full",
        "config": cfg,
        "versions": _versions(),
        "commit": _git_commit(),
        "elapsed_s": elapsed,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
    }
    print()
    print(report(meta, results))
    print(f"\n(total benchmark time {elapsed:.0f} s)")
    if a.out:
        write_json(a.out, {"meta": meta, "results": results, "targets": targets(results)})
        print(f"wrote {a.out}")
    return 1 if any(res["errors"] for res in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
