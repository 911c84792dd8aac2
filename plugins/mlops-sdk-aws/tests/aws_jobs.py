"""Job functions the SageMaker tests run through ``python -m mlops_sdk_aws.entry`` (imported by module name)."""

from __future__ import annotations

from typing import Any

import mlops_sdk


def add(a: float, b: float) -> dict[str, Any]:
    """Log a metric into the job's run and return a JSON result."""
    mlops_sdk.log_metric("total", a + b)
    return {"total": a + b, "items": [a, b]}


def train_iris(max_iter: int = 200) -> dict[str, Any]:
    """A real fit: logistic regression on iris; returns the training accuracy."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=max_iter).fit(X, y)
    accuracy = float(model.score(X, y))
    mlops_sdk.log_metric("accuracy", accuracy)
    return {"accuracy": accuracy}


def boom(message: str) -> None:
    raise RuntimeError(message)
