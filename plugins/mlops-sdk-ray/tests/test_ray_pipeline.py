"""Issue 6, done-when: the example pipeline (prepare → train → evaluate → register) on local Ray.

Every step runs as a job in a Ray task on the session's local instance (2 CPUs,
conftest.py); a second run is fully cached; the registered model's lineage
names the dataset version the prepare step snapshotted. Timings are printed
(``pytest -s``), never asserted.
"""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("pandas")

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
COMPUTE = "ray://local?num_cpus=2"  # joins the session's instance (conftest.RAY_URI)


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``examples/pipeline_example.py`` imported by module name (Ray workers import it the same way)."""
    if not (EXAMPLES / "pipeline_example.py").is_file():
        pytest.skip(
            f"no {EXAMPLES / 'pipeline_example.py'} (the plugin is tested outside the mlops-sdk checkout)"
        )
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("pipeline_example")


def _statuses(result: Any) -> dict[str, str]:
    return {name: r.status for name, r in result.steps.items()}


@pytest.mark.slow  # about 15 s: four steps, each a Ray task in a fresh worker process importing sklearn
def test_example_pipeline_on_local_ray(workspace: Any, example: ModuleType) -> None:
    t0 = time.perf_counter()
    first = example.pipe.run(compute=COMPUTE, workspace=workspace)
    t_first = time.perf_counter() - t0

    assert first.ok, {n: r.error for n, r in first.steps.items() if not r.ok}
    assert _statuses(first) == dict.fromkeys(example.pipe.order, "ran")
    assert workspace.get_run(first.run_id).tags["mlops.compute"] == COMPUTE
    step_runs = {name: workspace.get_run(r.run_id) for name, r in first.steps.items()}
    for name, run in step_runs.items():
        assert run.status == "FINISHED"
        assert run.parent_id == first.run_id
        assert run.tags["mlops.step"] == name and run.tags["mlops.job_id"]  # each step was a job
        # ...in a Ray worker process, not this one
        command = run.context["command"]
        assert (
            os.path.basename(command["argv"][0]) == "default_worker.py"
            and command["pid"] != os.getpid()
        )
    assert "test accuracy" in first.steps["evaluate"].logs
    assert step_runs["train"].params == {"C": 1.0, "max_iter": 1000}
    assert "train_accuracy" in step_runs["train"].metrics

    mv = first.steps["register"].output
    assert mv.name == "iris-clf" and mv.metrics["test_accuracy"] > 0.8
    lineage = mv.lineage()
    dsv = first.steps["prepare"].output
    assert (
        [(d.name, d.version) for d in lineage.datasets]
        == [(dsv.name, dsv.version)]
        == [("iris", 1)]
    )
    assert lineage.run is not None and lineage.run.id == first.steps["register"].run_id

    t0 = time.perf_counter()
    again = example.pipe.run(compute=COMPUTE, workspace=workspace)
    t_again = time.perf_counter() - t0
    print(
        f"\nexample pipeline on {COMPUTE}: first run {t_first:.2f} s, fully cached re-run {t_again:.3f} s"
    )

    assert _statuses(again) == dict.fromkeys(example.pipe.order, "cached")
    assert {n: r.run_id for n, r in again.steps.items()} == {
        n: r.run_id for n, r in first.steps.items()
    }
    assert again.steps["register"].output == mv
    assert [v.version for v in workspace.model("iris-clf").versions()] == [1]
    assert list(workspace.runs("attributes.status = 'RUNNING'")) == []
