"""Pipelines: DAG inference, caching, failure and resume, output storage, lineage (real sklearn, real SQLite)."""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mlops_sdk as mlops
from mlops_sdk import dag
from mlops_sdk.errors import InvalidValue, PipelineError, StepFailed, StepOutputError
from mlops_sdk.steps import cache_key, code_fingerprint

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CALLS: list[str] = []


@mlops.step
def source(n: int = 5):
    CALLS.append("source")
    return list(range(n))


@mlops.step
def double(source, factor: int = 2):
    CALLS.append("double")
    return [v * factor for v in source]


@mlops.step
def summed(double, source):
    CALLS.append("summed")
    return {"double": sum(double), "source": sum(source)}


@mlops.step
def side(source, offset: int = 0):
    CALLS.append("side")
    return len(source) + offset


def _pipe() -> mlops.Pipeline:
    return mlops.Pipeline("numbers", steps=[summed, side, double, source])


def _statuses(result: mlops.pipeline.PipelineResult) -> dict[str, str]:
    return {name: r.status for name, r in result.steps.items()}


def _no_run_left_running(ws: mlops.Workspace) -> None:
    assert list(ws.runs("attributes.status = 'RUNNING'")) == []


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("pipeline_example")


# -- the DAG -----------------------------------------------------------------------------------
def test_dag_is_inferred_from_parameter_names() -> None:
    pipe = _pipe()
    assert pipe.order == ["source", "side", "double", "summed"]  # ties keep the order given
    assert pipe.inputs == {"summed": ("double", "source"), "side": ("source",), "double": ("source",), "source": ()}
    assert pipe.defaults == {"summed": {}, "side": {"offset": 0}, "double": {"factor": 2}, "source": {"n": 5}}
    assert pipe.dag("text").splitlines() == [
        "source (n=5)", "├── side (offset=0)", "├── double (factor=2)", "│   └── summed", "└── summed (see above)",
    ]
    assert '"source" -> "double";' in pipe.dag("dot")
    assert pipe.dag("mermaid").startswith("flowchart LR")


def test_a_cycle_is_an_error_naming_its_steps() -> None:
    @mlops.step
    def ping(pong):
        return pong

    @mlops.step
    def pong(ping):
        return ping

    with pytest.raises(PipelineError, match=r"cycle: .*ping.*pong|cycle: .*pong.*ping"):
        mlops.Pipeline("loop", steps=[ping, pong])

    @mlops.step
    def selfish(selfish=None):
        return 1

    with pytest.raises(PipelineError, match="selfish -> selfish"):
        mlops.Pipeline("self", steps=[selfish])


def test_a_missing_upstream_step_is_an_error_naming_it() -> None:
    with pytest.raises(PipelineError, match=r"'double'.*output of step 'source'.*not in the pipeline"):
        mlops.Pipeline("partial", steps=[double])


def test_duplicate_step_names_and_non_steps_are_errors() -> None:
    @mlops.step(name="source")
    def another_source():
        return 1

    with pytest.raises(PipelineError, match="two steps named 'source'"):
        mlops.Pipeline("dup", steps=[source, another_source])
    with pytest.raises(PipelineError, match="not a step"):
        mlops.Pipeline("plain", steps=[len])  # type: ignore[list-item]
    with pytest.raises(PipelineError, match="non-empty"):
        mlops.Pipeline("empty", steps=[])
    with pytest.raises(InvalidValue, match="defined with def"):
        mlops.step(lambda *a: a)
    with pytest.raises(InvalidValue, match=r"\*args"):

        @mlops.step
        def star(*values):
            return values


def test_bad_params_are_typed_errors_and_start_nothing(workspace: mlops.Workspace) -> None:
    pipe = _pipe()
    with pytest.raises(InvalidValue, match=r"no param 'nope'.*factor, n, offset"):
        pipe.run(params={"nope": 1}, workspace=workspace)
    with pytest.raises(InvalidValue, match="output of step 'source'"):
        pipe.run(params={"source": 1}, workspace=workspace)
    with pytest.raises(InvalidValue, match="no step 'ghost'"):
        pipe.run(params={"ghost.n": 1}, workspace=workspace)
    with pytest.raises(InvalidValue):
        pipe.run(params={"n": float("nan")}, workspace=workspace)

    @mlops.step
    def needs(level):
        return level

    with pytest.raises(InvalidValue, match="needs param"):
        mlops.Pipeline("needy", steps=[needs]).run(workspace=workspace)
    assert list(workspace.runs()) == []


# -- caching -----------------------------------------------------------------------------------
def test_first_run_runs_everything_then_everything_is_cached(workspace: mlops.Workspace) -> None:
    pipe = _pipe()
    first = pipe.run(workspace=workspace)
    assert first.ok and _statuses(first) == dict.fromkeys(pipe.order, "ran")
    assert first.outputs == {"source": [0, 1, 2, 3, 4], "double": [0, 2, 4, 6, 8], "summed": {"double": 20, "source": 10}, "side": 5}
    parent = workspace.get_run(first.run_id)
    assert parent.status == "FINISHED" and parent.tags["mlops.pipeline"] == "numbers"
    assert parent.metrics["steps_ran"] == 4
    children = {r.name: r for r in parent.children()}
    assert set(children) == set(pipe.order)
    for name, run in children.items():
        assert run.tags["mlops.step"] == name and run.tags["mlops.cache_key"] == first.steps[name].cache_key
        assert run.parent_id == first.run_id
    assert children["double"].params == {"factor": 2}

    CALLS.clear()
    t0 = time.perf_counter()
    second = pipe.run(workspace=workspace)
    elapsed = time.perf_counter() - t0
    print(f"fully cached re-run of {len(pipe.order)} steps: {elapsed:.3f} s")
    assert CALLS == []
    assert _statuses(second) == dict.fromkeys(pipe.order, "cached")
    assert {n: r.run_id for n, r in second.steps.items()} == {n: r.run_id for n, r in first.steps.items()}
    assert second.outputs == first.outputs  # read back from the store
    assert json.loads(workspace.get_run(second.run_id).read_artifact("mlops-pipeline.json"))["steps"]["side"]["status"] == "cached"

    third = pipe.run(workspace=workspace, force=True)
    assert _statuses(third) == dict.fromkeys(pipe.order, "ran")
    _no_run_left_running(workspace)


def test_a_param_change_reruns_only_the_affected_steps(workspace: mlops.Workspace) -> None:
    pipe = _pipe()
    pipe.run(workspace=workspace)
    result = pipe.run(params={"factor": 3}, workspace=workspace)
    assert _statuses(result) == {"source": "cached", "double": "ran", "summed": "ran", "side": "cached"}
    assert result.outputs["summed"] == {"double": 30, "source": 10}
    only_side = pipe.run(params={"side.offset": 1, "factor": 3}, workspace=workspace)
    assert _statuses(only_side) == {"source": "cached", "double": "cached", "summed": "cached", "side": "ran"}
    status = {s.name: s for s in pipe.status({"factor": 4}, workspace=workspace)}
    assert (status["source"].state, status["double"].state, status["summed"].state) == ("cached", "stale", "stale")
    assert status["double"].reason == "params changed: factor"
    assert status["summed"].reason == "upstream double will run"
    upstream = pipe.run(params={"n": 3}, workspace=workspace)
    assert _statuses(upstream) == dict.fromkeys(pipe.order, "ran")


def test_an_unchanged_output_keeps_downstream_cached(workspace: mlops.Workspace) -> None:
    """Inputs are identified by content: an upstream re-run with the same output changes nothing downstream."""

    @mlops.step(name="base", cache=False)
    def base():
        return [1, 2, 3]

    @mlops.step
    def total(base):
        return sum(base)

    pipe = mlops.Pipeline("content", steps=[base, total])
    assert _statuses(pipe.run(workspace=workspace)) == {"base": "ran", "total": "ran"}
    assert _statuses(pipe.run(workspace=workspace)) == {"base": "ran", "total": "cached"}


def test_code_changes_are_detected_but_comments_and_docstrings_are_not(workspace: mlops.Workspace) -> None:
    @mlops.step(name="scale")
    def scale_v1(source):
        return [v * 2 for v in source]

    @mlops.step(name="scale")
    def scale_v1_reformatted(source):
        """Now with a docstring."""
        # and a comment
        return [v*2 for v in source]

    @mlops.step(name="scale")
    def scale_v2(source):
        return [v * 20 for v in source]

    first = mlops.Pipeline("code", steps=[source, scale_v1]).run(workspace=workspace)
    assert _statuses(first) == {"source": "ran", "scale": "ran"}
    same = mlops.Pipeline("code", steps=[source, scale_v1_reformatted]).run(workspace=workspace)
    assert _statuses(same) == {"source": "cached", "scale": "cached"}
    changed_pipe = mlops.Pipeline("code", steps=[source, scale_v2])
    assert {s.name: s.reason for s in changed_pipe.status(workspace=workspace)}["scale"] == "code changed"
    changed = changed_pipe.run(workspace=workspace)
    assert _statuses(changed) == {"source": "cached", "scale": "ran"}
    assert changed.outputs["scale"] == [0, 20, 40, 60, 80]


# -- failure and resume ------------------------------------------------------------------------
def test_a_failing_step_skips_its_dependants_and_a_rerun_resumes(workspace: mlops.Workspace) -> None:
    @mlops.step(name="double")
    def broken(source, factor: int = 2):
        print("about to fail")
        raise ValueError("factor too exciting")

    failed = mlops.Pipeline("numbers", steps=[source, broken, summed, side]).run(workspace=workspace)
    assert _statuses(failed) == {"source": "ran", "double": "failed", "summed": "skipped", "side": "ran"}
    step = failed.steps["double"]
    assert "ValueError: factor too exciting" in (step.error or "")
    assert "about to fail" in step.logs
    assert failed.status == "FAILED" and not failed.ok
    parent = workspace.get_run(failed.run_id)
    assert parent.status == "FAILED" and "factor too exciting" in (parent.error or "")
    run = workspace.get_run(step.run_id or "")
    assert run.status == "FAILED" and "Traceback" in (run.error or "")
    assert run.read_artifact("mlops-step-logs.txt").decode().strip() == "about to fail"
    assert not [a for a in run.artifacts() if a.path.startswith("mlops-step-output/")]
    assert failed.steps["summed"].run_id is None and failed.steps["summed"].output is None
    with pytest.raises(StepFailed, match=r"'double'.*factor too exciting"):
        failed.raise_for_status()
    _no_run_left_running(workspace)

    CALLS.clear()
    fixed = _pipe().run(workspace=workspace)
    assert _statuses(fixed) == {"source": "cached", "double": "ran", "summed": "ran", "side": "cached"}
    assert CALLS == ["double", "summed"]
    assert fixed.raise_for_status() is fixed


def test_an_unsupported_output_type_is_a_typed_error_naming_step_and_type(workspace: mlops.Workspace) -> None:
    class Opaque:
        pass

    @mlops.step
    def weird():
        return {"fine": [1, 2], "bad": Opaque()}

    @mlops.step
    def after(weird):
        return weird

    result = mlops.Pipeline("weird", steps=[weird, after]).run(workspace=workspace)
    assert _statuses(result) == {"weird": "failed", "after": "skipped"}
    assert isinstance(result.steps["weird"].exception, StepOutputError)
    with pytest.raises(StepOutputError, match=r"step 'weird' returned .*Opaque\['bad'\]"):
        result.raise_for_status()
    run = workspace.get_run(result.steps["weird"].run_id or "")
    assert run.status == "FAILED" and run.artifacts() == []
    _no_run_left_running(workspace)


def test_compute_needs_importable_steps_and_starts_nothing_otherwise(workspace: mlops.Workspace) -> None:
    @mlops.step
    def local_only():
        return 1

    with pytest.raises(InvalidValue, match="defined inside a function"):
        mlops.Pipeline("nested", steps=[local_only]).run(compute="local", workspace=workspace)
    with pytest.raises(InvalidValue, match="compute must be"):
        _pipe().run(compute=3, workspace=workspace)  # type: ignore[arg-type]
    assert list(workspace.runs()) == []


# -- outputs -----------------------------------------------------------------------------------
def test_every_supported_output_type_round_trips(workspace: mlops.Workspace, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
    y = np.array([0, 1, 0, 1])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x,y\n1,2\n")

    @mlops.step
    def everything():
        run = mlops.active_run()
        assert run is not None
        dsv = run.workspace.dataset("tiny").add(tmp_path / "data")
        model = LogisticRegression().fit(X, y)
        mv = run.log_model(model, "tiny-clf")
        return {
            "none": None, "flag": True, "int": 3, "float": 0.25, "nan": float("nan"), "text": "héllo",
            "list": [1, [2, "x"]], "tuple": (1, ("a", 2.5)), "nested": {"k": {"j": [None]}},
            "array": np.arange(6, dtype=np.float32).reshape(2, 3), "scalar": np.int64(7),
            "frame": pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), "series": pd.Series([1.5, 2.5], name="s"),
            "bytes": b"\x00\x01binary", "dataset": dsv, "model_version": mv, "model": model,
        }

    pipe = mlops.Pipeline("types", steps=[everything])
    fresh = pipe.run(workspace=workspace).raise_for_status().steps["everything"].output
    stored = pipe.run(workspace=workspace).steps["everything"]
    assert stored.status == "cached"
    back = stored.output
    assert back.keys() == fresh.keys()
    for key in ("none", "flag", "int", "float", "text", "list", "tuple", "nested", "scalar", "bytes", "dataset", "model_version"):
        assert back[key] == fresh[key], key
    assert isinstance(back["tuple"], tuple) and isinstance(back["tuple"][1], tuple)
    assert back["nan"] != back["nan"]
    assert back["array"].dtype == np.float32 and np.array_equal(back["array"], fresh["array"])
    pd.testing.assert_frame_equal(back["frame"], fresh["frame"])
    pd.testing.assert_series_equal(back["series"], fresh["series"])
    assert type(back["model"]).__name__ == "LogisticRegression"
    assert np.array_equal(back["model"].predict(X), fresh["model"].predict(X))


def test_object_arrays_and_non_string_keys_are_refused(workspace: mlops.Workspace) -> None:
    @mlops.step
    def objects():
        return np.array([object()], dtype=object)

    @mlops.step
    def int_keys():
        return {1: "a"}

    result = mlops.Pipeline("refused", steps=[objects, int_keys]).run(workspace=workspace)
    assert "needs pickle" in (result.steps["objects"].error or "")
    assert "dict key 1 is not a string" in (result.steps["int_keys"].error or "")


# -- the example: lineage ------------------------------------------------------------------------
def test_example_pipeline_registers_a_model_with_dataset_lineage(workspace: mlops.Workspace, example: ModuleType) -> None:
    first = example.pipe.run(workspace=workspace).raise_for_status()
    mv = first.steps["register"].output
    assert isinstance(mv, mlops.ModelVersion) and mv.metrics["test_accuracy"] > 0.8
    lineage = mv.lineage()
    assert [d.name for d in lineage.datasets] == ["iris"]
    assert lineage.run is not None and lineage.run.parent_id == first.run_id
    train_run = workspace.get_run(first.steps["train"].run_id or "")
    assert "train_accuracy" in train_run.metrics and train_run.params == {"C": 1.0, "max_iter": 1000}
    again = example.pipe.run(workspace=workspace)
    assert _statuses(again) == dict.fromkeys(example.pipe.order, "cached")
    assert again.steps["register"].output == mv
    assert len(workspace.model("iris-clf").versions()) == 1
    _no_run_left_running(workspace)


@pytest.mark.slow
def test_example_pipeline_runs_on_local_compute(workspace: mlops.Workspace, example: ModuleType) -> None:
    result = example.pipe.run(compute="local", workspace=workspace).raise_for_status()
    assert _statuses(result) == dict.fromkeys(example.pipe.order, "ran")
    mv = result.steps["register"].output
    assert [d.name for d in mv.lineage().datasets] == ["iris"]
    assert workspace.get_run(result.run_id).tags["mlops.compute"] == "local"
    assert "test accuracy" in result.steps["evaluate"].logs
    again = example.pipe.run(workspace=workspace)  # in-process now: the same cache keys
    assert _statuses(again) == dict.fromkeys(example.pipe.order, "cached")
    _no_run_left_running(workspace)


# -- invariants ----------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(params=st.dictionaries(st.text(min_size=1, max_size=5), json_values, max_size=4),
       inputs=st.dictionaries(st.text(min_size=1, max_size=5), st.text(min_size=1, max_size=8), max_size=3))
def test_cache_key_is_stable_and_order_independent(params: dict, inputs: dict) -> None:
    key = cache_key("step", "code", params, inputs)
    assert key == cache_key("step", "code", dict(reversed(list(params.items()))), dict(reversed(list(inputs.items()))))
    assert len(key) == 64
    assert key != cache_key("step2", "code", params, inputs)
    assert key != cache_key("step", "code2", params, inputs)
    assert key != cache_key("step", "code", {**params, "__extra__": 1}, inputs)
    assert key != cache_key("step", "code", params, {**inputs, "__extra__": "h"})


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=1, max_value=9).flatmap(
    lambda n: st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=20).map(lambda e: (n, e))))
def test_topological_order_respects_every_edge(graph: tuple[int, list[tuple[int, int]]]) -> None:
    n, pairs = graph
    edges = {f"s{i}": tuple(sorted({f"s{a}" for a, b in pairs if b == i and a < i})) for i in reversed(range(n))}
    order = dag.topological_order(edges)
    assert sorted(order) == sorted(edges)
    for node, ups in edges.items():
        for up in ups:
            assert order.index(up) < order.index(node)
    text = dag.to_text(edges)
    assert all(name in text for name in edges)
    assert dag.find_cycle(edges) is None


def test_code_fingerprint_ignores_layout_only() -> None:
    def a(x, y=1):
        return x + y

    def b(x, y=1):
        "doc"
        return x+y  # fmt: skip

    def c(x, y=2):
        return x + y

    assert code_fingerprint(a) == code_fingerprint(b) != code_fingerprint(c)


def test_import_stays_lean_with_pipelines(tmp_path: Path) -> None:
    import subprocess

    code = "import sys, mlops_sdk as m; m.step; m.Pipeline; print(sorted({'numpy','pandas','sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
