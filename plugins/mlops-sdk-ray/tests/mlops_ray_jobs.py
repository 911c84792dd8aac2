"""Job functions for the Ray plugin's tests; Ray workers import this module by name (never a pickle)."""

from __future__ import annotations

import os
import sys
import time

import mlops_sdk as mlops


def train_classifier(C: float = 1.0, n_samples: int = 300, seed: int = 0) -> dict[str, float]:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    X, y = make_classification(n_samples=n_samples, n_features=8, random_state=seed)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=seed)
    clf = LogisticRegression(C=C, max_iter=200).fit(X_train, y_train)
    acc = float(clf.score(X_val, y_val))
    val_loss = 1.0 - acc
    print(f"trained C={C} acc={acc:.3f}", flush=True)
    mlops.log_metrics({"acc": acc, "val_loss": val_loss})
    for step, value in enumerate((0.9, 0.5, val_loss)):
        mlops.log_metric("loss", value, step=step)
    with open("coef.txt", "w") as f:
        f.write(" ".join(f"{c:.4f}" for c in clf.coef_[0]))
    mlops.log_artifact("coef.txt")
    return {"acc": acc, "val_loss": val_loss, "pid": os.getpid()}


def window(seconds: float = 1.0) -> dict[str, float]:
    """Busy for ``seconds``; returns when it ran, to check how many jobs overlapped."""
    start = time.time()
    time.sleep(seconds)
    return {"start": start, "end": time.time(), "pid": os.getpid()}


def fail(reason: str) -> None:
    mlops.log_metric("before_failure", 1.0)
    print("about to fail", file=sys.stderr, flush=True)
    raise ValueError(f"bad input: {reason}")


def sleepy(seconds: float = 120.0) -> str:
    print("sleeping", flush=True)
    mlops.log_metric("started", 1.0)
    time.sleep(seconds)
    return "woke up"


def spin(seconds: float = 120.0) -> int:
    """A pure-Python loop: stops at the next instruction when interrupted."""
    print("spinning", flush=True)
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return n


def c_level_output() -> str:
    os.write(1, b"written to fd 1\n")
    os.system("echo from a child process")
    return "ok"


def orphan() -> str:
    return "never runs"


orphan.__module__ = "mlops_ray_no_such_module"  # a function the workers cannot import
