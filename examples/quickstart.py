"""Quickstart: track three training runs of a real model, then compare them.

Trains a linear classifier on scikit-learn's breast-cancer data set (shipped
with scikit-learn, no download) epoch by epoch, logging params and per-epoch
metrics; then prints the runs, best first. Everything lands in ./.mlops/ —
no server, no configuration.

    python examples/quickstart.py
    mlops runs ls --experiment quickstart
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import mlops_sdk as mlops


def train(run: mlops.Run, alpha: float, epochs: int = 20) -> float:
    X, y = load_breast_cancer(return_X_y=True)
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
    return float(accuracy_score(y_val, model.predict(X_val)))


def main() -> None:
    ws = mlops.Workspace.open()
    exp = ws.experiment("quickstart")
    for alpha in (1e-4, 1e-3, 1e-2):
        with exp.start_run(name=f"sgd-alpha-{alpha:g}", params={"alpha": alpha, "epochs": 20}, tags={"model": "sgd"}) as run:
            acc = train(run, alpha)
            run.log_param("dataset", "sklearn.datasets.load_breast_cancer")
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


if __name__ == "__main__":
    main()
