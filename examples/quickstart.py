"""Quickstart: version a data set, track three training runs, register the best model.

Writes scikit-learn's breast-cancer data set (shipped with scikit-learn, no
download) to a CSV and versions it; trains a linear classifier on it epoch by
epoch in three runs, logging params and per-epoch metrics and registering each
run's model; then prints the runs, best first, points the ``production`` alias
at the best model and loads it back. Everything lands in ./.mlops/ — no
server, no configuration. The same code runs unchanged on S3 or Azure Blob:
``MLOPS_STORAGE=s3://bucket/prefix`` (docs/s3.md) or ``az://container/prefix``
(docs/azure.md).

    python examples/quickstart.py
    mlops runs ls --experiment quickstart
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import mlops_sdk as mlops


def write_data(folder: Path) -> Path:
    """The raw data as a user would have it: a CSV file, last column the label."""
    X, y = load_breast_cancer(return_X_y=True)
    folder.mkdir(exist_ok=True)
    np.savetxt(folder / "breast_cancer.csv", np.column_stack([X, y]), delimiter=",", fmt="%.6g")
    return folder


def train(run: mlops.Run, data: mlops.DatasetVersion, alpha: float, epochs: int = 20) -> float:
    with data.open("breast_cancer.csv") as f:
        table = np.loadtxt(f, delimiter=",")
    X, y = table[:, :-1], table[:, -1].astype(int)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
    model = SGDClassifier(loss="log_loss", alpha=alpha, random_state=0)
    classes = np.unique(y)
    for epoch in range(epochs):
        model.partial_fit(X_train, y_train, classes=classes)
        run.log_metrics(
            {
                "train_loss": log_loss(y_train, model.predict_proba(X_train)),
                "val_loss": log_loss(y_val, model.predict_proba(X_val)),
                "val_acc": accuracy_score(y_val, model.predict(X_val)),
            },
            step=epoch,
        )
    run.log_model(Pipeline([("scale", scaler), ("clf", model)]), "breast-cancer-clf", input_example=X_val[:5])
    return float(accuracy_score(y_val, model.predict(X_val)))


def main() -> None:
    ws = mlops.Workspace.open()
    data = ws.dataset("breast-cancer").add(write_data(Path("data")), message="sklearn's breast-cancer set")
    exp = ws.experiment("quickstart")
    for alpha in (1e-4, 1e-3, 1e-2):
        with exp.start_run(name=f"sgd-alpha-{alpha:g}", params={"alpha": alpha, "epochs": 20}, tags={"model": "sgd"}) as run:
            run.use_dataset(data)
            acc = train(run, data, alpha)
        print(f"run {run.id[:8]} alpha={alpha:g} val_acc={acc:.3f}")

    runs = exp.runs(order_by=["-metrics.val_acc", "metrics.val_loss"])
    print(f"\n{len(runs)} runs in experiment {exp.name!r}, best first:")
    header = f"{'run':<10}{'name':<20}{'status':<10}{'alpha':>8}{'val_acc':>10}{'val_loss':>10}"
    print(header)
    print("-" * len(header))
    for r in runs:
        print(
            f"{r.id[:8]:<10}{r.name:<20}{r.status.value:<10}{r.params['alpha']:>8g}"
            f"{r.metrics['val_acc']:>10.4f}{r.metrics['val_loss']:>10.4f}"
        )
    best = runs[0]
    history = best.metric_history("val_loss")
    print(f"\nbest run {best.name}: val_loss over {len(history)} epochs, "
          f"{history[0].value:.4f} -> {history[-1].value:.4f}")

    model = ws.model("breast-cancer-clf")
    best_version = next(mv for mv in model.versions() if mv.run_id == best.id)
    best_version.set_alias("production")
    with data.open("breast_cancer.csv") as f:
        X_check = np.loadtxt(f, delimiter=",")[:3, :-1]
    print(f"model {model.name}@production = v{model.alias('production').version}, "
          f"predicts {model.alias('production').predict(X_check).tolist()} for the first 3 rows; "
          f"data set {data.name} v{data.version} ({len(data.files())} file) in {ws.config.storage}")


if __name__ == "__main__":
    main()
