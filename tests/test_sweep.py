"""``exp.sweep``: trials as jobs (real subprocesses) under a parent run; samplers; bad input."""

from __future__ import annotations

import importlib
import itertools
import math
import os
import random
import textwrap
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mlops_sdk as mlops
from mlops_sdk.errors import InvalidValue, JobError, MissingDependency
from mlops_sdk.records import RunStatus
from mlops_sdk.sweep import SweepResult, expand_grid, parse_space, sample

TRIALS_MODULE = """
import mlops_sdk as mlops


def quadratic(x, y=0.0, fail_at=None):
    if fail_at is not None and x == fail_at:
        raise RuntimeError(f"trial with x={x} blew up")
    loss = (x - 1.0) ** 2 + y
    mlops.log_metric("val_loss", loss)
    return {"val_loss": loss, "note": "logged"}


def returns_only(x):
    return {"val_loss": abs(x), "aux": 2 * x, "flag": True}


def logs_something_else(x):
    mlops.log_metric("loss", x)
    return None


def logistic(C):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    X, y = load_iris(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    clf = LogisticRegression(C=C, max_iter=500).fit(X_train, y_train)
    mlops.log_metric("val_acc", float(clf.score(X_val, y_val)))
    return {"n_iter": int(clf.n_iter_.max())}
"""


@pytest.fixture
def trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    folder = tmp_path / "code"
    folder.mkdir()
    name = f"mlops_test_trials_{os.getpid()}_{time.monotonic_ns()}"
    (folder / f"{name}.py").write_text(textwrap.dedent(TRIALS_MODULE))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(tmp_path)
    return importlib.import_module(name)


def _no_run_left_running(ws: mlops.Workspace) -> None:
    assert [r.name for r in ws.runs() if r.status is RunStatus.RUNNING] == []


def test_grid_sweep_runs_trials_as_children_best_first_failures_last(
    workspace: mlops.Workspace, trials: ModuleType
) -> None:
    exp = workspace.experiment("sweeps")
    result = exp.sweep(
        trials.quadratic,
        grid={"x": [0.0, 1.0, 2.0, 3.0], "y": [0.5], "fail_at": 3.0},
        max_parallel=2,
        metric="val_loss",
        mode="min",
    )
    assert isinstance(result, SweepResult) and len(result) == 4
    assert [t.params["x"] for t in result] == [1.0, 0.0, 2.0, 3.0]  # 0.5, 1.5, 1.5 (tie: trial order), failed
    assert [t.status for t in result] == [RunStatus.FINISHED] * 3 + [RunStatus.FAILED]
    assert result.best.params == {"x": 1.0, "y": 0.5, "fail_at": 3.0}
    assert result.best.metrics["val_loss"] == 0.5
    assert result.best_params["x"] == 1.0
    assert result.failed == [result[-1]]
    assert "blew up" in (result.outcomes[result[-1].id].error or "")
    assert result[-1].error is not None and "x=3.0 blew up" in result[-1].error

    parent = result.parent
    assert parent.status is RunStatus.FINISHED
    assert parent.tags["mlops.sweep.metric"] == "val_loss" and parent.tags["mlops.sweep.sampler"] == "grid"
    assert parent.tags["mlops.sweep.best_run_id"] == result.best.id
    assert parent.metrics["best_val_loss"] == 0.5
    assert sorted(r.id for r in parent.children()) == sorted(t.id for t in result)
    assert all(t.experiment_id == exp.id and t.parent_id == parent.id for t in result)

    records = result.to_records()
    assert [r["trial"] for r in records] == [1, 0, 2, 3]
    assert records[0]["val_loss"] == 0.5 and records[0]["params.x"] == 1.0 and records[0]["error"] is None
    assert records[-1]["status"] == "FAILED" and records[-1]["val_loss"] is None
    html = result._repr_html_()
    assert "<table" in html and "best val_loss = 0.5" in html
    _no_run_left_running(workspace)


def test_a_metric_only_returned_is_logged_on_the_trial(workspace: mlops.Workspace, trials: ModuleType) -> None:
    result = workspace.experiment("ret").sweep(
        trials.returns_only, grid={"x": [-2, 1, 3]}, metric="val_loss", mode="max"
    )
    assert [t.params["x"] for t in result] == [3, -2, 1]
    assert result.best.metrics == {"val_loss": 3.0, "aux": 6.0}  # numbers only; the bool is not a metric


def test_a_metric_no_trial_reports_fails_the_parent_not_the_caller(
    workspace: mlops.Workspace, trials: ModuleType
) -> None:
    result = workspace.experiment("typo").sweep(trials.logs_something_else, grid={"x": [1, 2]}, metric="val_loss")
    assert len(result) == 2 and result.failed == list(result)
    assert all(t.status is RunStatus.FINISHED for t in result)  # the trials themselves ran fine
    with pytest.raises(JobError, match=r"no trial .* reported 'val_loss'.*it logged loss"):
        result.best  # noqa: B018
    assert result.parent.status is RunStatus.FAILED
    assert "val_loss" in (result.parent.error or "")
    _no_run_left_running(workspace)


def test_random_search_is_seeded_and_within_bounds(workspace: mlops.Workspace, trials: ModuleType) -> None:
    space = {"x": ("uniform", -1.0, 2.0), "y": ("loguniform", 1e-3, 1e-1)}
    exp = workspace.experiment("random")
    first = exp.sweep(trials.quadratic, space=space, n_trials=3, seed=7, max_parallel=2, metric="val_loss")
    assert len(first) == 3 and not first.failed
    for t in first:
        assert -1.0 <= t.params["x"] <= 2.0 and 1e-3 <= t.params["y"] <= 1e-1
    assert first.parent.tags["mlops.sweep.sampler"] == "random" and first.parent.tags["mlops.sweep.seed"] == "7"
    rng = random.Random(7)
    expected = [sample(parse_space(space), rng) for _ in range(3)]
    got = sorted((first.outcomes[t.id].index, t.params) for t in first)
    assert [p for _, p in got] == expected
    values = [first.value(t) for t in first]
    assert values == sorted(values)  # type: ignore[type-var]


def test_sweep_of_a_real_sklearn_model(workspace: mlops.Workspace, trials: ModuleType) -> None:
    result = workspace.experiment("iris").sweep(
        trials.logistic, grid={"C": [0.001, 10.0]}, metric="val_acc", mode="max", max_parallel=2,
        resources={"cpus": 1, "timeout": 120},
    )
    assert [t.params["C"] for t in result] == [10.0, 0.001]
    assert result.best.metrics["val_acc"] > 0.9 > result[1].metrics["val_acc"]
    assert "n_iter" in result.best.metrics


def test_optuna_sampler(workspace: mlops.Workspace, trials: ModuleType) -> None:
    pytest.importorskip("optuna")
    result = workspace.experiment("optuna").sweep(
        trials.quadratic,
        space={"x": ("uniform", -2.0, 4.0), "y": [0.0, 1.0]},
        n_trials=4,
        sampler="optuna",
        seed=3,
        max_parallel=2,
        metric="val_loss",
    )
    assert len(result) == 4 and not result.failed
    assert all(-2.0 <= t.params["x"] <= 4.0 and t.params["y"] in (0.0, 1.0) for t in result)
    assert result.parent.tags["mlops.sweep.sampler"] == "optuna"
    assert result.value(result.best) == min(result.value(t) for t in result)  # type: ignore[type-var]


def test_optuna_missing_is_a_clear_error(workspace: mlops.Workspace, trials: ModuleType) -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("optuna is installed")
    with pytest.raises(MissingDependency, match="pip install 'mlops-sdk\\[optuna\\]'"):
        workspace.experiment("o").sweep(trials.quadratic, space={"x": ("uniform", 0, 1)}, n_trials=2,
                                        sampler="optuna", metric="val_loss")
    assert workspace.runs() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of grid= .* or space="),
        ({"grid": {"x": [1]}, "space": {"x": [1]}}, "exactly one"),
        ({"grid": {"x": []}}, "empty"),
        ({"grid": {}}, "non-empty dict"),
        ({"grid": {"x": [object()]}}, "JSON"),
        ({"grid": {"x": [1]}, "n_trials": 3}, "n_trials is for"),
        ({"space": {"x": ("uniform", 0, 1)}}, "needs n_trials"),
        ({"space": {"x": ("uniform", 1, 0)}, "n_trials": 2}, "below high"),
        ({"space": {"x": ("loguniform", 0, 1)}, "n_trials": 2}, "low > 0"),
        ({"space": {"x": ("normal", 0, 1)}, "n_trials": 2}, "uniform, loguniform, int"),
        ({"space": {"x": ("int", 1.5, 3)}, "n_trials": 2}, "whole numbers"),
        ({"space": {"x": ("uniform", 0, float("nan"))}, "n_trials": 2}, "finite"),
        ({"space": {"x": ("uniform", 0, 1)}, "n_trials": 0}, "positive integer"),
        ({"space": {"x": ("uniform", 0, 1)}, "n_trials": 2, "sampler": "bayes"}, "unknown sampler"),
        ({"space": {"x": ("uniform", 0, 1)}, "n_trials": 2, "sampler": "grid"}, "needs grid="),
        ({"grid": {"x": [1]}, "mode": "minimise"}, "mode"),
        ({"grid": {"x": [1]}, "max_parallel": 0}, "max_parallel"),
        ({"grid": {"x": [1]}, "seed": -1}, "seed"),
        ({"grid": {"x": [1]}, "resources": {"gpu": 1}}, "unknown resource"),
        ({"grid": {"x": [1]}, "compute": 3}, "compute must be"),
    ],
)
def test_bad_sweep_input_is_refused_before_any_run(
    workspace: mlops.Workspace, trials: ModuleType, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidValue, match=message):
        workspace.experiment("bad").sweep(trials.quadratic, metric="val_loss", **kwargs)
    assert workspace.runs() == []


def test_sweep_refuses_functions_a_worker_cannot_import(workspace: mlops.Workspace) -> None:
    with pytest.raises(InvalidValue, match="lambda"):
        workspace.experiment("bad").sweep(lambda x: x, grid={"x": [1]}, metric="m")
    assert workspace.runs() == []


# -- properties of the samplers (no processes) -------------------------------------------
_values = st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3), st.booleans(), st.none()), min_size=1, max_size=4)


@given(st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), _values, min_size=1, max_size=4))
def test_grid_expansion_is_exactly_the_cartesian_product(grid: dict[str, list[Any]]) -> None:
    points = expand_grid(grid)
    assert len(points) == math.prod(len(v) for v in grid.values())
    expected = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    assert points == expected
    assert all(list(p) == list(grid) for p in points)


_bounds = st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)).filter(lambda b: b[0] < b[1])
_pos_bounds = st.tuples(st.floats(1e-8, 1e6), st.floats(1e-8, 1e6)).filter(lambda b: b[0] < b[1])
_int_bounds = st.tuples(st.integers(-1000, 1000), st.integers(-1000, 1000)).filter(lambda b: b[0] <= b[1])


@given(_bounds, _pos_bounds, _int_bounds, st.lists(st.text(max_size=3), min_size=1, max_size=5),
       st.integers(0, 2**32 - 1))
def test_random_points_are_within_bounds_and_repeat_with_the_seed(
    uniform: tuple[float, float], logu: tuple[float, float], ints: tuple[int, int], choices: list[str], seed: int
) -> None:
    dims = parse_space({
        "u": ("uniform", *uniform), "l": ("loguniform", *logu), "i": ("int", *ints), "c": choices, "k": 7,
    })
    draws = [sample(dims, random.Random(seed)) for _ in range(2)]
    assert draws[0] == draws[1]
    rng = random.Random(seed)
    for _ in range(5):
        p = sample(dims, rng)
        assert uniform[0] <= p["u"] <= uniform[1]
        assert logu[0] <= p["l"] <= logu[1]
        assert isinstance(p["i"], int) and ints[0] <= p["i"] <= ints[1]
        assert p["c"] in choices and p["k"] == 7


INTERRUPTED_SWEEP = """
import sys
import time

import mlops_sdk as mlops


def sleeper(i):
    time.sleep(120)
    return {"val_loss": 1.0}


if __name__ == "__main__":
    ws = mlops.Workspace.open(sys.argv[1])
    ws.experiment("interrupted").sweep(sleeper, grid={"i": [0, 1, 2, 3]}, max_parallel=2, metric="val_loss")
"""


def test_interrupting_a_sweep_cancels_its_trials_and_ends_every_run(
    workspace: mlops.Workspace, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    script = tmp_path / "interrupted_sweep.py"
    script.write_text(INTERRUPTED_SWEEP)
    proc = subprocess.Popen([sys.executable, str(script), str(workspace.root)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while len([r for r in workspace.runs() if r.parent_id]) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep never started two trials"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    runs = workspace.runs()
    parents = [r for r in runs if r.parent_id is None]
    trials_ = [r for r in runs if r.parent_id is not None]
    assert len(parents) == 1 and parents[0].status is RunStatus.KILLED
    assert len(trials_) == 2  # the other two were never started
    assert {r.status for r in trials_} == {RunStatus.KILLED}
