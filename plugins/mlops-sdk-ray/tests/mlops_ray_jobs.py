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


def rendezvous(folder: str, parties: int = 2, timeout: float = 60.0) -> dict[str, int]:
    """Wait until ``parties`` jobs have started (the first ones wait for the others); return the most seen running at once.

    Each job marks itself running, then arrived; it polls, counting running
    jobs, until enough have arrived (or ``timeout``), then keeps running half a
    second longer so that a job running beside it is counted. No clock and no
    start-up time is compared, so a slow machine does not change the outcome.
    """
    import uuid
    from pathlib import Path

    running, arrived = Path(folder, "running"), Path(folder, "arrived")
    running.mkdir(parents=True, exist_ok=True)
    arrived.mkdir(parents=True, exist_ok=True)
    me = running / uuid.uuid4().hex
    me.touch()
    (arrived / me.name).touch()
    peak = 0
    deadline = time.monotonic() + timeout
    linger_until: float | None = None
    try:
        while True:
            peak = max(peak, sum(1 for _ in running.iterdir()))
            now = time.monotonic()
            if linger_until is None and (
                sum(1 for _ in arrived.iterdir()) >= parties or now > deadline
            ):
                linger_until = now + 0.5
            if linger_until is not None and now > linger_until:
                return {"peak": peak}
            time.sleep(0.02)
    finally:
        me.unlink()


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
