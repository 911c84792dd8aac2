"""The conformance suite every :class:`~mlops_sdk.tracking.base.TrackingStore` runs.

Subclass :class:`TrackingStoreConformance` in a test module (the subclass name
must start with ``Test``) and provide a ``tracking_store`` fixture that yields
a fresh, empty store::

    class TestSqliteTracking(TrackingStoreConformance):
        @pytest.fixture
        def tracking_store(self, tmp_path):
            store = SqlTrackingStore("sqlite:///t.db", root=tmp_path)
            yield store
            store.close()

Each test checks one clause of the contract in the docstring of
:mod:`mlops_sdk.tracking.base`. Search results are checked against
:func:`mlops_sdk.query.matches`, the reference evaluator every store must
agree with, on random runs and random filters (hypothesis).
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_sdk.errors import (
    BackendError,
    DatasetNotFound,
    ExperimentNotFound,
    InvalidValue,
    MlopsError,
    ModelNotFound,
    RunNotFound,
    VersionNotFound,
)
from mlops_sdk.query import (
    COMPARE_OPS,
    LIST_OPS,
    TEXT_OPS,
    And,
    Comparison,
    Expr,
    Or,
    OrderKey,
    matches,
    parse_filter,
    sort_records,
)
from mlops_sdk.records import ArtifactEntry, RunRecord, RunStatus, WriteBatch
from mlops_sdk.tracking.base import TrackingStore

__all__ = ["TrackingStoreConformance", "reference_order"]

# Each hypothesis example touches a database: keep the counts modest. The fixture's
# store is shared by a test's examples (each example makes its own experiment), and
# the same inherited test runs once per subclass (``differing_executors``). Set
# MLOPS_CONFORMANCE_EXAMPLES to search harder (a nightly job, a new backend).
EXAMPLES = int(os.environ.get("MLOPS_CONFORMANCE_EXAMPLES", "40"))
_HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.differing_executors,
    ],
)


def _new_id() -> str:
    return uuid.uuid4().hex


def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _same_value(a: Any, b: Any) -> bool:
    """Equal and of the same JSON type all the way down (``True`` is not ``1``, ``1`` is not ``1.0``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return _same_float(a, b)
    return bool(a == b)


# -- strategies for the search cross-check ------------------------------------------------
METRIC_KEYS = ("m1", "val loss")
PARAM_KEYS = ("p1", "p/2")
TAG_KEYS = ("t1", "t.2")
NUMBERS = (0.0, 1.0, -1.0, 2.5, 1e300, math.inf, -math.inf, math.nan)
TEXTS = (
    "",
    "a",
    "A",
    "b",
    "ab",
    "aB",
    "1",
    "1.0",
    "2.5",
    " 1",
    "true",
    "null",
    "a%",
    "%",
    "_",
    "é",
    "É",
    "x_y",
    "[1, 2]",
)
START = 1_000_000.0
_ORDER_KEYS = {"metrics": "m", "params": "p", "tags": "t", "attributes": "name"}

_numbers = st.one_of(st.sampled_from(NUMBERS), st.floats(-3, 3))
_texts = st.sampled_from(TEXTS)
_patterns = st.sampled_from(
    ("%", "a%", "%a", "_", "a_", "%1%", "A%", "é", "É", "%b", "", "x_y", "x\\_y")
)
_metric_values = st.one_of(st.sampled_from(NUMBERS), st.floats())
_param_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from((0.0, 1.0, 2.5, -1.0, 1e300)),
    _texts,
    st.lists(st.integers(0, 2), max_size=2),
    st.dictionaries(st.sampled_from(("a", "b")), st.integers(0, 1), max_size=1),
)

_run_specs = st.fixed_dictionaries(
    {
        "name": st.sampled_from(("r1", "r2", "R1", "run_1", "é")),
        "params": st.dictionaries(st.sampled_from(PARAM_KEYS), _param_values, max_size=2),
        "tags": st.dictionaries(st.sampled_from(TAG_KEYS), _texts, max_size=2),
        "metrics": st.dictionaries(
            st.sampled_from(METRIC_KEYS),
            st.lists(st.tuples(_metric_values, st.integers(0, 3)), min_size=1, max_size=3),
            max_size=2,
        ),
        "end": st.sampled_from((None, RunStatus.FINISHED, RunStatus.FAILED)),
    }
)


@st.composite
def _comparisons(draw: st.DrawFn) -> Comparison:
    """Any comparison the filter parser accepts (the same typing rules as ``query._checked``)."""
    field = draw(st.sampled_from(("metrics", "params", "tags", "attributes")))
    if field == "metrics":
        key, kind = draw(st.sampled_from(METRIC_KEYS)), "number"
    elif field == "params":
        key, kind = draw(st.sampled_from(PARAM_KEYS)), "any"
    elif field == "tags":
        key, kind = draw(st.sampled_from(TAG_KEYS)), "text"
    else:
        key = draw(st.sampled_from(("name", "status", "start_time", "end_time", "parent_id")))
        kind = "number" if key in ("start_time", "end_time") else "text"
    ops = COMPARE_OPS + LIST_OPS + (TEXT_OPS if kind != "number" else ())
    op = draw(st.sampled_from(ops))
    if kind == "number":
        single: st.SearchStrategy[Any] = _numbers
        if key in ("start_time", "end_time"):
            single = st.one_of(
                st.sampled_from((START, START + 1, START + 2.5, 0.0, math.inf, math.nan)), _numbers
            )
    elif kind == "text":
        single = _texts
        if key == "status":
            single = st.sampled_from(("RUNNING", "FINISHED", "FAILED", "running", "KILLED"))
        elif key == "name":
            single = st.sampled_from(("r1", "r2", "R1", "run_1", "é", "É", "x"))
    else:
        single = st.one_of(_numbers, _texts)
    if op in TEXT_OPS:
        return Comparison(field, key, op, draw(_patterns))
    if op in LIST_OPS:
        return Comparison(field, key, op, tuple(draw(st.lists(single, min_size=1, max_size=3))))
    return Comparison(field, key, op, draw(single))


_filters: st.SearchStrategy[Expr] = st.recursive(
    _comparisons(),
    lambda children: st.one_of(
        st.builds(And, st.lists(children, min_size=2, max_size=3).map(tuple)),
        st.builds(Or, st.lists(children, min_size=2, max_size=3).map(tuple)),
    ),
    max_leaves=5,
)


# -- the reference ordering: mlops_sdk.query.sort_records ---------------------------------
reference_order = sort_records


class TrackingStoreConformance:
    """The tracking store contract. Subclass as ``Test…`` and provide a ``tracking_store`` fixture.

    Set ``assigns_own_run_ids = True`` for a store whose server chooses run ids
    (``create_run``'s ``run_id`` is then only a proposal the store may ignore).
    Set ``supports_versions = False`` for a store that keeps runs only: the
    version, lineage and alias tests then check that every such call raises
    :class:`~mlops_sdk.errors.BackendError` instead.
    """

    assigns_own_run_ids = False
    supports_versions = True
    #: the largest metric value the store reads back unchanged (MLflow keeps ±inf as ±DBL_MAX,
    #: so DBL_MAX itself reads back as inf there and its suite sets the next float down)
    largest_exact_metric = 1.7976931348623157e308

    @pytest.fixture
    def tracking_store(self) -> TrackingStore:
        raise NotImplementedError(
            f"{type(self).__name__} must provide a `tracking_store` fixture returning a fresh, empty TrackingStore"
        )

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def new_experiment(store: TrackingStore, prefix: str = "exp") -> str:
        return store.get_or_create_experiment(f"{prefix}-{_new_id()}").id

    @staticmethod
    def new_run(store: TrackingStore, experiment_id: str, **kwargs: Any) -> RunRecord:
        kwargs.setdefault("run_id", _new_id())
        kwargs.setdefault("name", "run")
        kwargs.setdefault("start_time", time.time())
        return store.create_run(experiment_id, **kwargs)

    # -- experiments --------------------------------------------------------------------
    def test_get_or_create_experiment_is_idempotent(self, tracking_store: TrackingStore) -> None:
        first = tracking_store.get_or_create_experiment("churn")
        again = tracking_store.get_or_create_experiment("churn")
        assert first.id == again.id
        assert first.name == again.name == "churn"
        assert [e.id for e in tracking_store.list_experiments()] == [first.id]

    def test_experiment_names_are_unique_and_case_sensitive(
        self, tracking_store: TrackingStore
    ) -> None:
        a = tracking_store.get_or_create_experiment("a")
        upper = tracking_store.get_or_create_experiment("A")
        spaced = tracking_store.get_or_create_experiment("a b")
        assert len({a.id, upper.id, spaced.id}) == 3
        assert sorted(e.name for e in tracking_store.list_experiments()) == ["A", "a", "a b"]

    def test_find_and_get_experiment(self, tracking_store: TrackingStore) -> None:
        created = tracking_store.get_or_create_experiment("näme with ünïcode")
        found = tracking_store.find_experiment("näme with ünïcode")
        assert found is not None and found.id == created.id
        assert tracking_store.get_experiment(created.id).name == "näme with ünïcode"
        assert tracking_store.find_experiment("missing") is None

    def test_get_missing_experiment_raises(self, tracking_store: TrackingStore) -> None:
        with pytest.raises(ExperimentNotFound):
            tracking_store.get_experiment(_new_id())

    def test_list_experiments_oldest_first(self, tracking_store: TrackingStore) -> None:
        ids = [tracking_store.get_or_create_experiment(f"exp-{i}").id for i in range(3)]
        assert [e.id for e in tracking_store.list_experiments()] == ids

    def test_experiment_tags_set_and_replace(self, tracking_store: TrackingStore) -> None:
        exp = tracking_store.get_or_create_experiment("tagged")
        tracking_store.set_experiment_tag(exp.id, "team", "growth")
        tracking_store.set_experiment_tag(exp.id, "stage", "dev")
        tracking_store.set_experiment_tag(exp.id, "team", "core")
        assert dict(tracking_store.get_experiment(exp.id).tags) == {"team": "core", "stage": "dev"}
        found = tracking_store.find_experiment("tagged")
        assert found is not None and dict(found.tags) == {"team": "core", "stage": "dev"}

    def test_set_tag_on_missing_experiment_raises(self, tracking_store: TrackingStore) -> None:
        with pytest.raises(ExperimentNotFound):
            tracking_store.set_experiment_tag(_new_id(), "k", "v")

    def test_get_or_create_from_many_threads_returns_one_experiment(
        self, tracking_store: TrackingStore
    ) -> None:
        n = 8
        barrier = threading.Barrier(n)
        ids: list[str] = []
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                barrier.wait(timeout=30)
                for _ in range(5):
                    ids.append(tracking_store.get_or_create_experiment("shared").id)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        assert len(ids) == n * 5
        assert len(set(ids)) == 1
        assert [e.name for e in tracking_store.list_experiments()] == ["shared"]

    # -- runs ----------------------------------------------------------------------------
    def test_create_and_get_run(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run_id = _new_id()
        context: dict[str, object] = {
            "git": {"commit": "abc"},
            "python": {"version": "3.11"},
            "argv": ["train.py", "--n", "3"],
        }
        created = tracking_store.create_run(
            exp,
            run_id=run_id,
            name="first",
            start_time=1234.5,
            params={
                "n": 100,
                "lr": 0.1,
                "name": "rf",
                "flag": True,
                "none": None,
                "layers": [1, 2],
                "cfg": {"a": {"b": 1}},
            },
            tags={"team": "growth"},
            context=context,
        )
        if self.assigns_own_run_ids:
            run_id = created.id
        for record in (created, tracking_store.get_run(run_id)):
            assert record.id == run_id
            assert record.experiment_id == exp
            assert record.name == "first"
            assert record.status is RunStatus.RUNNING
            assert record.start_time == 1234.5
            assert record.end_time is None
            assert record.parent_id is None
            assert record.error is None
            assert _same_value(
                dict(record.params),
                {
                    "n": 100,
                    "lr": 0.1,
                    "name": "rf",
                    "flag": True,
                    "none": None,
                    "layers": [1, 2],
                    "cfg": {"a": {"b": 1}},
                },
            )
            assert dict(record.tags) == {"team": "growth"}
            assert dict(record.metrics) == {}
            assert dict(record.context) == context

    def test_run_ids_are_unique(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp, name="one")
        if self.assigns_own_run_ids:  # the store picks ids: proposing a taken one still gives a new run
            other = self.new_run(tracking_store, exp, run_id=run.id, name="two")
            assert other.id != run.id
            assert tracking_store.get_run(run.id).name == "one"
            assert tracking_store.count_runs([exp]) == 2
            return
        with pytest.raises(MlopsError):
            self.new_run(tracking_store, exp, run_id=run.id, name="two")
        assert tracking_store.get_run(run.id).name == "one"
        assert tracking_store.count_runs([exp]) == 1

    def test_create_run_in_missing_experiment_raises(self, tracking_store: TrackingStore) -> None:
        with pytest.raises(ExperimentNotFound):
            self.new_run(tracking_store, _new_id())
        assert tracking_store.count_runs(None) == 0

    def test_create_run_with_missing_parent_raises(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        with pytest.raises(RunNotFound):
            self.new_run(tracking_store, exp, parent_id=_new_id())
        assert tracking_store.count_runs([exp]) == 0

    def test_child_run_records_its_parent(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        parent = self.new_run(tracking_store, exp, name="parent")
        child = self.new_run(tracking_store, exp, name="child", parent_id=parent.id)
        assert tracking_store.get_run(child.id).parent_id == parent.id
        found = tracking_store.search_runs([exp], parse_filter(f"parent_id = '{parent.id}'"))
        assert [r.id for r in found] == [child.id]

    def test_get_missing_run_raises(self, tracking_store: TrackingStore) -> None:
        with pytest.raises(RunNotFound):
            tracking_store.get_run(_new_id())

    @pytest.mark.parametrize("status", [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED])
    def test_end_run(self, tracking_store: TrackingStore, status: RunStatus) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp, start_time=100.0)
        error = None if status is RunStatus.FINISHED else "Traceback: boom"
        tracking_store.end_run(run.id, status, 200.0, error)
        ended = tracking_store.get_run(run.id)
        assert ended.status is status
        assert ended.end_time == 200.0
        assert ended.error == error

    def test_ending_twice_keeps_the_first_ending(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp, start_time=100.0)
        tracking_store.end_run(run.id, RunStatus.FINISHED, 200.0)
        tracking_store.end_run(run.id, RunStatus.FAILED, 300.0, "late error")
        tracking_store.end_run(run.id, RunStatus.KILLED, 400.0, "later still")
        ended = tracking_store.get_run(run.id)
        assert (ended.status, ended.end_time, ended.error) == (RunStatus.FINISHED, 200.0, None)

    def test_end_missing_run_raises(self, tracking_store: TrackingStore) -> None:
        with pytest.raises(RunNotFound):
            tracking_store.end_run(_new_id(), RunStatus.FINISHED, time.time())

    # -- write_batch ---------------------------------------------------------------------
    def test_params_are_immutable_first_write_wins(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp, params={"a": 1})
        tracking_store.write_batch(
            WriteBatch(params=[(run.id, "a", 2), (run.id, "b", "x"), (run.id, "b", "y")])
        )
        tracking_store.write_batch(
            WriteBatch(params=[(run.id, "b", "z"), (run.id, "c", [1, {"d": None}])])
        )
        params = dict(tracking_store.get_run(run.id).params)
        assert _same_value(params, {"a": 1, "b": "x", "c": [1, {"d": None}]})

    def test_tags_last_write_wins(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp, tags={"a": "1"})
        tracking_store.write_batch(
            WriteBatch(tags=[(run.id, "a", "2"), (run.id, "b", "x"), (run.id, "b", "y")])
        )
        assert dict(tracking_store.get_run(run.id).tags) == {"a": "2", "b": "y"}
        tracking_store.write_batch(WriteBatch(tags=[(run.id, "a", "")]))
        assert dict(tracking_store.get_run(run.id).tags) == {"a": "", "b": "y"}

    def test_param_values_round_trip(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp)
        values: dict[str, Any] = {
            "int": 7,
            "big": 2**70,
            "neg": -3,
            "float": 0.1,
            "tiny": 5e-324,
            "true": True,
            "false": False,
            "none": None,
            "text": "héllo\nwörld ✓",
            "empty": "",
            "numeric_text": "1.5",
            "list": [1, "a", None, [2.5]],
            "dict": {"x": {"y": [True]}},
            "zero": 0,
            "fzero": 0.0,
        }
        tracking_store.write_batch(WriteBatch(params=[(run.id, k, v) for k, v in values.items()]))
        assert _same_value(dict(tracking_store.get_run(run.id).params), values)

    def test_metric_values_round_trip_including_nan_and_inf(
        self, tracking_store: TrackingStore
    ) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp)
        values = {
            "nan": math.nan,
            "inf": math.inf,
            "ninf": -math.inf,
            "tiny": 5e-324,
            "big": self.largest_exact_metric,
            "neg": -2.5,
        }
        tracking_store.write_batch(
            WriteBatch(metrics=[(run.id, k, v, 0, 1.0) for k, v in values.items()])
        )
        metrics = tracking_store.get_run(run.id).metrics
        assert metrics.keys() == values.keys()
        for key, value in values.items():
            assert _same_float(metrics[key], value), key
            history = tracking_store.metric_history(run.id, key)
            assert len(history) == 1 and _same_float(history[0].value, value)

    def test_latest_metric_is_highest_step_then_latest_timestamp(
        self, tracking_store: TrackingStore
    ) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp)
        # arrival order differs from (step, timestamp) order
        tracking_store.write_batch(
            WriteBatch(metrics=[(run.id, "loss", 0.5, 5, 10.0), (run.id, "loss", 0.9, 1, 50.0)])
        )
        tracking_store.write_batch(WriteBatch(metrics=[(run.id, "loss", 0.7, 5, 20.0)]))
        tracking_store.write_batch(
            WriteBatch(metrics=[(run.id, "loss", 0.6, 5, 15.0), (run.id, "loss", 0.1, 3, 99.0)])
        )
        assert tracking_store.get_run(run.id).metrics["loss"] == 0.7

    def test_latest_metric_may_be_nan(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp)
        tracking_store.write_batch(
            WriteBatch(metrics=[(run.id, "loss", 0.5, 0, 1.0), (run.id, "loss", math.nan, 1, 2.0)])
        )
        assert math.isnan(tracking_store.get_run(run.id).metrics["loss"])
        tracking_store.write_batch(WriteBatch(metrics=[(run.id, "loss", 0.25, 2, 3.0)]))
        assert tracking_store.get_run(run.id).metrics["loss"] == 0.25

    @given(data=st.data())
    @_HYPOTHESIS
    def test_latest_metric_and_history_whatever_the_arrival_order(
        self, tracking_store: TrackingStore, data: st.DataObject
    ) -> None:
        exp = self.new_experiment(tracking_store)
        runs = [self.new_run(tracking_store, exp).id for _ in range(2)]
        point = st.tuples(
            st.sampled_from(runs),
            st.sampled_from(("loss", "acc")),
            _metric_values,
            st.integers(0, 3),
            st.sampled_from((1.0, 2.0, 3.0)),
        )
        points = data.draw(st.lists(point, min_size=1, max_size=12), label="points")
        cuts = sorted(
            data.draw(st.sets(st.integers(1, len(points)), max_size=3), label="cuts")
            | {len(points)}
        )
        start = 0
        for cut in cuts:
            tracking_store.write_batch(WriteBatch(metrics=list(points[start:cut])))
            start = cut
        for run_id in runs:
            metrics = tracking_store.get_run(run_id).metrics
            for key in ("loss", "acc"):
                arrived = [p for p in points if p[0] == run_id and p[1] == key]
                # sorted() is stable: points with the same step and timestamp keep arrival order
                expected = sorted(arrived, key=lambda p: (p[3], p[4]))
                history = tracking_store.metric_history(run_id, key)
                assert [(m.step, m.timestamp) for m in history] == [(p[3], p[4]) for p in expected]
                assert all(
                    _same_float(m.value, p[2]) and m.key == key
                    for m, p in zip(history, expected, strict=True)
                )
                if not expected:
                    assert key not in metrics
                else:
                    assert _same_float(metrics[key], expected[-1][2])

    def test_write_batch_spans_several_runs(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        a, b = self.new_run(tracking_store, exp), self.new_run(tracking_store, exp)
        tracking_store.write_batch(
            WriteBatch(
                metrics=[(a.id, "m", 1.0, 0, 1.0), (b.id, "m", 2.0, 0, 1.0)],
                params=[(a.id, "p", "a"), (b.id, "p", "b")],
                tags=[(a.id, "t", "a"), (b.id, "t", "b")],
            )
        )
        ra, rb = tracking_store.get_run(a.id), tracking_store.get_run(b.id)
        assert (dict(ra.metrics), dict(ra.params), dict(ra.tags)) == (
            {"m": 1.0},
            {"p": "a"},
            {"t": "a"},
        )
        assert (dict(rb.metrics), dict(rb.params), dict(rb.tags)) == (
            {"m": 2.0},
            {"p": "b"},
            {"t": "b"},
        )

    def test_empty_batch_is_a_no_op(self, tracking_store: TrackingStore) -> None:
        tracking_store.write_batch(WriteBatch())

    def test_failed_batch_leaves_the_store_unchanged(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp, params={"kept": 1}, tags={"t": "old"})
        tracking_store.write_batch(WriteBatch(metrics=[(run.id, "m", 1.0, 0, 1.0)]))
        bad: Any = None  # a metric point with no step or timestamp: every store must refuse it
        batch = WriteBatch(
            params=[(run.id, "new_param", 5)],
            tags=[(run.id, "t", "new"), (run.id, "t2", "x")],
            metrics=[(run.id, "m", 2.0, 1, 2.0), (run.id, "m", 3.0, bad, bad)],
        )
        with pytest.raises(MlopsError):
            tracking_store.write_batch(batch)
        after = tracking_store.get_run(run.id)
        assert dict(after.params) == {"kept": 1}
        assert dict(after.tags) == {"t": "old"}
        assert dict(after.metrics) == {"m": 1.0}
        assert [m.value for m in tracking_store.metric_history(run.id, "m")] == [1.0]

    def test_reads_never_see_a_half_applied_batch(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp)
        n = 40
        done = threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                for i in range(n):
                    tracking_store.write_batch(
                        WriteBatch(
                            metrics=[(run.id, "m", float(i), i, float(i))],
                            params=[(run.id, f"p{i}", i)],
                            tags=[(run.id, "i", str(i))],
                        )
                    )
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=writer)
        thread.start()
        seen = 0
        while not done.is_set() or seen == 0:
            record = tracking_store.get_run(run.id)
            seen += 1
            if "i" in record.tags:
                i = int(record.tags["i"])
                assert record.metrics["m"] == float(i)
                assert set(record.params) == {f"p{j}" for j in range(i + 1)}
            else:
                assert not record.metrics and not record.params
        thread.join(timeout=120)
        assert not errors, errors
        assert tracking_store.get_run(run.id).tags["i"] == str(n - 1)

    # -- metric history ------------------------------------------------------------------
    def test_metric_history_order(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp)
        tracking_store.write_batch(
            WriteBatch(metrics=[(run.id, "loss", 3.0, 2, 5.0), (run.id, "loss", 1.0, 0, 9.0)])
        )
        tracking_store.write_batch(
            WriteBatch(metrics=[(run.id, "loss", 2.5, 2, 1.0), (run.id, "loss", math.nan, 1, 1.0)])
        )
        tracking_store.write_batch(
            WriteBatch(metrics=[(run.id, "loss", 4.0, 2, 5.0), (run.id, "other", 7.0, 0, 1.0)])
        )
        history = tracking_store.metric_history(run.id, "loss")
        assert [(m.step, m.timestamp) for m in history] == [
            (0, 9.0),
            (1, 1.0),
            (2, 1.0),
            (2, 5.0),
            (2, 5.0),
        ]
        values = [m.value for m in history]
        assert values[0] == 1.0 and math.isnan(values[1]) and values[2:] == [2.5, 3.0, 4.0]
        assert all(m.key == "loss" for m in history)
        assert tracking_store.get_run(run.id).metrics["loss"] == 4.0

    def test_metric_history_of_unlogged_key_is_empty(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp)
        assert tracking_store.metric_history(run.id, "never") == []

    def test_metric_history_of_missing_run_raises(self, tracking_store: TrackingStore) -> None:
        with pytest.raises(RunNotFound):
            tracking_store.metric_history(_new_id(), "loss")

    def test_large_steps(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp)
        tracking_store.write_batch(
            WriteBatch(metrics=[(run.id, "m", 1.0, 2**40, 1.0), (run.id, "m", 2.0, 2**31, 1.0)])
        )
        assert [m.step for m in tracking_store.metric_history(run.id, "m")] == [2**31, 2**40]
        assert tracking_store.get_run(run.id).metrics["m"] == 1.0

    # -- search ------------------------------------------------------------------------------
    def _three_runs(self, store: TrackingStore) -> tuple[str, list[RunRecord]]:
        exp = self.new_experiment(store)
        runs = []
        for i, (acc, n, team) in enumerate(
            [(0.9, 100, "growth"), (0.7, 10, "core"), (0.8, 100, "growth")]
        ):
            run = self.new_run(
                store, exp, name=f"r{i}", start_time=START + i, params={"n": n}, tags={"team": team}
            )
            store.write_batch(WriteBatch(metrics=[(run.id, "acc", acc, 0, 1.0)]))
            runs.append(run)
        return exp, runs

    def test_search_without_filter_is_newest_first(self, tracking_store: TrackingStore) -> None:
        exp, runs = self._three_runs(tracking_store)
        found = tracking_store.search_runs([exp])
        assert [r.id for r in found] == [runs[2].id, runs[1].id, runs[0].id]
        assert (
            found[0].metrics["acc"] == 0.8
            and found[0].params["n"] == 100
            and found[0].tags["team"] == "growth"
        )

    def test_search_scopes_to_experiments(self, tracking_store: TrackingStore) -> None:
        exp1, runs1 = self._three_runs(tracking_store)
        exp2, runs2 = self._three_runs(tracking_store)
        assert {r.id for r in tracking_store.search_runs([exp1])} == {r.id for r in runs1}
        assert {r.id for r in tracking_store.search_runs([exp1, exp2])} == {
            r.id for r in runs1 + runs2
        }
        assert {r.id for r in tracking_store.search_runs(None)} == {r.id for r in runs1 + runs2}
        assert tracking_store.search_runs([]) == []
        assert tracking_store.search_runs([_new_id()]) == []
        assert tracking_store.count_runs(None) == 6 and tracking_store.count_runs([exp2]) == 3

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("metrics.acc > 0.75", [2, 0]),
            ("metrics.acc > 0.75 and params.n = 100", [2, 0]),
            ("params.n < 50 or tags.team = 'growth'", [2, 1, 0]),
            ("tags.team != 'growth'", [1]),
            ("tags.team in ('core', 'nobody')", [1]),
            ("tags.team not in ('core')", [2, 0]),
            ("tags.team like 'gr%'", [2, 0]),
            ("tags.team like 'GR%'", []),
            ("tags.team ilike 'GR%'", [2, 0]),
            ("params.n = '100'", [2, 0]),
            ("metrics.missing > 0", []),
            ("metrics.missing != 0", []),
            ("params.missing not in (1)", []),
            ("name = 'r1'", [1]),
            ("status = 'RUNNING'", [2, 1, 0]),
            ("metrics.acc = nan", []),
            ("(metrics.acc >= 0.8 and params.n = 100) or name like 'r_'", [2, 1, 0]),
            # lists mixing numbers and text: the first value's type picks the reading
            ("params.n in (100, 'x')", [2, 0]),
            ("params.n in ('100', 5)", [2, 0]),
            ("params.n not in (10, 'x')", [2, 0]),
            # NaN in a list never matches, the other values still do
            ("metrics.acc in (nan, 0.7)", [1]),
            ("metrics.acc not in (nan)", [2, 1, 0]),
        ],
    )
    def test_search_filters(
        self, tracking_store: TrackingStore, text: str, expected: list[int]
    ) -> None:
        exp, runs = self._three_runs(tracking_store)
        expr = parse_filter(text)
        found = tracking_store.search_runs([exp], expr)
        assert [r.id for r in found] == [runs[i].id for i in expected]
        assert tracking_store.count_runs([exp], expr) == len(expected)

    def test_like_is_case_sensitive_and_ilike_folds_any_letter(
        self, tracking_store: TrackingStore
    ) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp, tags={"who": "Émile Ωmega"}, params={"p": "ÄBC"})
        for text, hit in [
            ("tags.who like 'Émile%'", True),
            ("tags.who like 'émile%'", False),
            ("tags.who ilike 'émile ωMEGA'", True),
            ("tags.who ilike '_MILE%'", True),
            ("params.p ilike 'äbc'", True),
            ("params.p like 'äbc'", False),
        ]:
            expr = parse_filter(text)
            record = tracking_store.get_run(run.id)
            assert matches(expr, record) is hit, text
            assert [r.id for r in tracking_store.search_runs([exp], expr)] == (
                [run.id] if hit else []
            ), text

    def test_search_order_by_and_paging(self, tracking_store: TrackingStore) -> None:
        exp, runs = self._three_runs(tracking_store)
        extra = self.new_run(tracking_store, exp, name="no-acc", start_time=START + 10)
        ids = {r.id: i for i, r in enumerate([*runs, extra])}

        def order(keys: list[OrderKey], **kw: Any) -> list[int]:
            return [ids[r.id] for r in tracking_store.search_runs([exp], None, keys, **kw)]

        assert order([OrderKey("metrics", "acc", descending=True)]) == [0, 2, 1, 3]
        assert order([OrderKey("metrics", "acc")]) == [1, 2, 0, 3]  # missing last either way
        assert order([OrderKey("params", "n"), OrderKey("metrics", "acc")]) == [1, 2, 0, 3]
        assert order([OrderKey("attributes", "start_time")]) == [0, 1, 2, 3]
        assert order([OrderKey("metrics", "acc", descending=True)], limit=2) == [0, 2]
        assert order([OrderKey("metrics", "acc", descending=True)], limit=2, offset=1) == [2, 1]
        assert order([OrderKey("metrics", "acc", descending=True)], offset=3) == [3]
        assert order([], limit=0) == []
        assert order([], offset=10) == []
        assert tracking_store.count_runs([exp]) == 4

    def test_search_sees_end_status_and_times(self, tracking_store: TrackingStore) -> None:
        exp, runs = self._three_runs(tracking_store)
        tracking_store.end_run(runs[0].id, RunStatus.FAILED, START + 100, "boom")
        found = tracking_store.search_runs([exp], parse_filter("status = 'FAILED'"))
        assert [(r.id, r.status, r.end_time, r.error) for r in found] == [
            (runs[0].id, RunStatus.FAILED, START + 100, "boom")
        ]
        assert tracking_store.count_runs([exp], parse_filter("end_time > 0")) == 1

    @given(
        specs=st.lists(_run_specs, min_size=1, max_size=6),
        filters=st.lists(_filters, min_size=1, max_size=6),
    )
    @_HYPOTHESIS
    def test_search_agrees_with_reference_evaluator(
        self, tracking_store: TrackingStore, specs: list[dict[str, Any]], filters: list[Expr]
    ) -> None:
        exp = self.new_experiment(tracking_store, "search")
        records = self._create_runs(tracking_store, exp, specs)
        for expr in filters:
            expected = {r.id for r in records if matches(expr, r)}
            found = [r.id for r in tracking_store.search_runs([exp], expr)]
            assert len(found) == len(set(found)), f"duplicate runs for {expr}"
            assert set(found) == expected, f"filter {expr} on {records}"
            assert tracking_store.count_runs([exp], expr) == len(expected), f"count for {expr}"

    @given(
        specs=st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(("a", "b", "c")),
                    "params": st.dictionaries(
                        st.just("p"),
                        st.one_of(
                            st.integers(-2, 2),
                            st.sampled_from((0.5, "1", "1.0", "x", "y", "", True, None)),
                        ),
                        max_size=1,
                    ),
                    "tags": st.dictionaries(
                        st.just("t"), st.sampled_from(("a", "b", "ab", "")), max_size=1
                    ),
                    "metrics": st.dictionaries(
                        st.just("m"),
                        st.lists(
                            st.tuples(
                                st.sampled_from((0.0, 1.0, -1.0, math.inf, -math.inf, math.nan)),
                                st.just(0),
                            ),
                            min_size=1,
                            max_size=1,
                        ),
                        max_size=1,
                    ),
                    "end": st.just(None),
                }
            ),
            min_size=1,
            max_size=6,
        ),
        order_by=st.lists(
            st.builds(
                OrderKey,
                st.sampled_from(("metrics", "params", "tags", "attributes")),
                st.just(""),
                st.booleans(),
            ).map(lambda k: OrderKey(k.field, _ORDER_KEYS[k.field], k.descending)),
            max_size=2,
        ),
        limit=st.one_of(st.none(), st.integers(0, 7)),
        offset=st.integers(0, 3),
    )
    @_HYPOTHESIS
    def test_order_by_limit_offset_agree_with_reference_order(
        self,
        tracking_store: TrackingStore,
        specs: list[dict[str, Any]],
        order_by: list[OrderKey],
        limit: int | None,
        offset: int,
    ) -> None:
        exp = self.new_experiment(tracking_store, "order")
        records = self._create_runs(tracking_store, exp, specs)
        expected = [r.id for r in reference_order(records, order_by)]
        assert [r.id for r in tracking_store.search_runs([exp], None, order_by)] == expected
        end = None if limit is None else offset + limit
        paged = tracking_store.search_runs([exp], None, order_by, limit=limit, offset=offset)
        assert [r.id for r in paged] == expected[offset:end]
        assert tracking_store.count_runs([exp]) == len(records)

    def _create_runs(
        self, store: TrackingStore, experiment_id: str, specs: list[dict[str, Any]]
    ) -> list[RunRecord]:
        """Create runs from specs (params, tags, metric points, ending) and check they read back."""
        ids = []
        for i, spec in enumerate(specs):
            run = self.new_run(
                store,
                experiment_id,
                name=spec["name"],
                start_time=START + i,
                params=spec["params"],
                tags=spec["tags"],
            )
            points = [
                (run.id, key, value, step, float(n))
                for key, pts in spec["metrics"].items()
                for n, (value, step) in enumerate(pts)
            ]
            store.write_batch(WriteBatch(metrics=points))
            if spec["end"] is not None:
                store.end_run(run.id, spec["end"], START + i + 0.5)
            ids.append(run.id)
        records = [store.get_run(run_id) for run_id in ids]
        for spec, record in zip(specs, records, strict=True):
            assert _same_value(dict(record.params), spec["params"])
            assert dict(record.tags) == spec["tags"]
            assert record.metrics.keys() == spec["metrics"].keys()
        return records

    # -- artifacts --------------------------------------------------------------------------
    def test_artifacts_add_and_list_sorted(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp)
        entries = [
            ArtifactEntry("plots/roc.png", 10, "a" * 64),
            ArtifactEntry("model/x.bin", 2**33, "b" * 64),
            ArtifactEntry("README", 0, "c" * 64),
        ]
        tracking_store.add_artifacts(run.id, entries)
        assert tracking_store.list_artifacts(run.id) == sorted(entries, key=lambda e: e.path)

    def test_artifact_logged_again_is_replaced(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        run = self.new_run(tracking_store, exp)
        tracking_store.add_artifacts(
            run.id, [ArtifactEntry("a.txt", 1, "a" * 64), ArtifactEntry("b.txt", 2, "b" * 64)]
        )
        tracking_store.add_artifacts(run.id, [ArtifactEntry("a.txt", 3, "c" * 64)])
        assert tracking_store.list_artifacts(run.id) == [
            ArtifactEntry("a.txt", 3, "c" * 64),
            ArtifactEntry("b.txt", 2, "b" * 64),
        ]

    def test_artifacts_are_per_run(self, tracking_store: TrackingStore) -> None:
        exp = self.new_experiment(tracking_store)
        a, b = self.new_run(tracking_store, exp), self.new_run(tracking_store, exp)
        tracking_store.add_artifacts(a.id, [ArtifactEntry("x", 1, "a" * 64)])
        tracking_store.add_artifacts(a.id, [])
        assert tracking_store.list_artifacts(b.id) == []
        assert len(tracking_store.list_artifacts(a.id)) == 1

    def test_add_artifacts_to_missing_run_raises(self, tracking_store: TrackingStore) -> None:
        with pytest.raises(RunNotFound):
            tracking_store.add_artifacts(_new_id(), [ArtifactEntry("x", 1, "a" * 64)])

    def test_errors_are_mlops_errors(self, tracking_store: TrackingStore) -> None:
        for call in (
            lambda: tracking_store.get_run(_new_id()),
            lambda: tracking_store.get_experiment(_new_id()),
            lambda: tracking_store.end_run(_new_id(), RunStatus.FINISHED, 1.0),
            lambda: tracking_store.metric_history(_new_id(), "m"),
        ):
            with pytest.raises(MlopsError):
                call()

    # -- versions of datasets and models, lineage, aliases -------------------------------------
    # A store that keeps runs only (an MLflow server) sets ``supports_versions = False``: it
    # must then refuse every version call with a clear BackendError, which is checked instead.
    def _versions(self, store: TrackingStore) -> TrackingStore:
        if not self.supports_versions:
            pytest.skip(f"{type(self).__name__} keeps no dataset or model versions (supports_versions = False)")
        return store

    @staticmethod
    def manifest_bytes(label: str) -> bytes:
        """Canonical-looking manifest bytes, unique per label (the store treats them as opaque UTF-8)."""
        return (
            '{"algorithm":"sha256","files":[["données/' + label + '.csv",3,"' + "a" * 64 + '"]],"format":1}'
        ).encode()

    def new_version(
        self, store: TrackingStore, name: str, label: str, kind: str = "dataset", **kwargs: Any
    ) -> tuple[Any, bool]:
        import hashlib

        manifest = self.manifest_bytes(label)
        kwargs.setdefault("created_at", time.time())
        return store.create_version(kind, name, id=hashlib.sha256(manifest).hexdigest(), manifest=manifest, **kwargs)

    def test_stores_without_versions_say_so(self, tracking_store: TrackingStore) -> None:
        if self.supports_versions:
            pytest.skip("this store keeps versions: see the other version tests")
        calls: list[Any] = [
            lambda: tracking_store.create_version("dataset", "d", id="a" * 64, manifest=b"{}", created_at=1.0),
            lambda: tracking_store.get_version("dataset", "d", 1),
            lambda: tracking_store.find_version("dataset", "d", "a" * 64),
            lambda: tracking_store.list_versions("dataset"),
            lambda: tracking_store.version_names("model"),
            lambda: tracking_store.get_manifest("dataset", "d", 1),
            lambda: tracking_store.update_version("dataset", "d", 1, message="m"),
            lambda: tracking_store.add_lineage(_new_id(), "dataset", "d", 1, "input"),
            lambda: tracking_store.lineage(run_id=_new_id()),
            lambda: tracking_store.set_alias("model", "m", "production", 1),
            lambda: tracking_store.aliases("model", "m"),
            lambda: tracking_store.alias_history("model", "m", "production"),
        ]
        for call in calls:
            with pytest.raises(BackendError, match="versions"):
                call()

    def test_versions_are_numbered_from_one_per_kind_and_name(self, tracking_store: TrackingStore) -> None:
        store = self._versions(tracking_store)
        name = f"ds-{_new_id()[:8]}"
        created = [self.new_version(store, name, f"v{i}") for i in range(3)]
        assert [(r.version, new) for r, new in created] == [(1, True), (2, True), (3, True)]
        other, _ = self.new_version(store, f"{name}-other", "v0")
        model, _ = self.new_version(store, name, "v0", kind="model")  # kinds count apart, even under one name
        assert other.version == 1 and model.version == 1 and model.kind == "model"
        assert [r.version for r in store.list_versions("dataset", name)] == [1, 2, 3]
        assert [r.version for r in store.list_versions("model", name)] == [1]
        names = store.version_names("dataset")
        assert name in names and f"{name}-other" in names and names == sorted(names)
        listed = store.list_versions("dataset")
        assert [(r.name, r.version) for r in listed] == sorted((r.name, r.version) for r in listed)

    def test_version_records_round_trip(self, tracking_store: TrackingStore) -> None:
        store = self._versions(tracking_store)
        exp = self.new_experiment(store)
        run = self.new_run(store, exp)
        name = f"ds-{_new_id()[:8]}"
        meta = {"files": 3, "size": 2**40, "source": {"type": "dvc", "rev": "abc"}, "ratio": 0.5, "ok": True}
        record, created = self.new_version(
            store, name, "x", message="Nov export ✓\nsecond line", tags={"team": "growth", "k/é": ""},
            meta=meta, run_id=run.id, created_at=1_700_000_000.25,
        )
        assert created
        for got in (record, store.get_version("dataset", name, 1)):
            assert (got.kind, got.name, got.version, got.run_id) == ("dataset", name, 1, run.id)
            assert got.message == "Nov export ✓\nsecond line" and dict(got.tags) == {"team": "growth", "k/é": ""}
            assert _same_value(dict(got.meta), meta) and got.created_at == 1_700_000_000.25
            assert len(got.id) == 64

    def test_get_manifest_returns_the_exact_bytes(self, tracking_store: TrackingStore) -> None:
        import hashlib

        store = self._versions(tracking_store)
        name = f"ds-{_new_id()[:8]}"
        manifest = '{"algorithm":"sha256","files":[["日本/データ ✓.csv",0,"' + "e" * 64 + '"],["a\\"b",1,"' + "f" * 64 + '"]],"format":1}'
        data = manifest.encode()
        store.create_version("dataset", name, id=hashlib.sha256(data).hexdigest(), manifest=data, created_at=1.0)
        got = store.get_manifest("dataset", name, 1)
        assert got == data and hashlib.sha256(got).hexdigest() == store.get_version("dataset", name, 1).id

    def test_dedupe_returns_the_existing_version_and_writes_nothing(self, tracking_store: TrackingStore) -> None:
        store = self._versions(tracking_store)
        name = f"ds-{_new_id()[:8]}"
        first, created = self.new_version(store, name, "same", message="first", dedupe=True)
        assert created and first.version == 1
        again, created = self.new_version(store, name, "same", message="second", tags={"t": "x"}, dedupe=True)
        assert not created and again.version == 1 and again.id == first.id
        assert again.message == "first" and dict(again.tags) == {}
        assert [r.version for r in store.list_versions("dataset", name)] == [1]
        other, created = self.new_version(store, f"{name}-b", "same", dedupe=True)
        assert created and other.version == 1  # dedupe is per name
        plain, created = self.new_version(store, name, "same")  # without dedupe: a new number, same id
        assert created and plain.version == 2 and plain.id == first.id
        changed, created = self.new_version(store, name, "other", dedupe=True)
        assert created and changed.version == 3
        reverted, created = self.new_version(store, name, "same", dedupe=True)  # only the latest counts
        assert created and reverted.version == 4 and reverted.id == first.id

    def test_concurrent_creates_get_distinct_numbers(self, tracking_store: TrackingStore) -> None:
        store = self._versions(tracking_store)
        name = f"ds-{_new_id()[:8]}"
        n = 8
        barrier = threading.Barrier(n)
        numbers: list[int] = []
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            try:
                barrier.wait(timeout=30)
                record, _ = self.new_version(store, name, f"writer-{i}")
                numbers.append(record.version)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        assert sorted(numbers) == list(range(1, n + 1))
        assert [r.version for r in store.list_versions("dataset", name)] == list(range(1, n + 1))

    def test_find_version_by_id_and_unique_prefix(self, tracking_store: TrackingStore) -> None:
        store = self._versions(tracking_store)
        name = f"ds-{_new_id()[:8]}"
        ids = ["abcdef" + "0" * 58, "abcdef" + "1" * 58, "123456" + "2" * 58]
        for i, id in enumerate(ids):
            store.create_version("dataset", name, id=id, manifest=self.manifest_bytes(str(i)), created_at=float(i))
        store.create_version("dataset", name, id=ids[2], manifest=self.manifest_bytes("2"), created_at=9.0)
        found = store.find_version("dataset", name, ids[0])
        assert found is not None and found.version == 1
        found = store.find_version("dataset", name, "abcdef0")
        assert found is not None and found.version == 1
        found = store.find_version("dataset", name, "abcdef1")
        assert found is not None and found.version == 2
        assert store.find_version("dataset", name, "abcdef") is None  # ambiguous: two versions start so
        found = store.find_version("dataset", name, "123456")  # one id in two versions: the first
        assert found is not None and found.version == 3
        for nothing in ("abcde", "fedcba", "ABCDEF0", "abcdeg0", "", ids[0] + "0"):
            assert store.find_version("dataset", name, nothing) is None, nothing
        assert store.find_version("dataset", f"{name}-other", ids[0][:10]) is None
        assert store.find_version("model", name, ids[0]) is None

    def test_update_version_replaces_message_and_merges_tags(self, tracking_store: TrackingStore) -> None:
        store = self._versions(tracking_store)
        name = f"ds-{_new_id()[:8]}"
        record, _ = self.new_version(store, name, "x", message="old", tags={"a": "1", "b": "2"})
        manifest = store.get_manifest("dataset", name, 1)
        updated = store.update_version("dataset", name, 1, message="new", tags={"b": "20", "c": "3"})
        assert updated.message == "new" and dict(updated.tags) == {"a": "1", "b": "20", "c": "3"}
        assert store.update_version("dataset", name, 1, tags={"d": "4"}).message == "new"  # message untouched
        assert store.update_version("dataset", name, 1, message="").message == ""
        final = store.get_version("dataset", name, 1)
        assert dict(final.tags) == {"a": "1", "b": "20", "c": "3", "d": "4"}
        assert final.id == record.id and store.get_manifest("dataset", name, 1) == manifest  # content never changes

    def test_lineage_is_recorded_once_and_filtered(self, tracking_store: TrackingStore) -> None:
        store = self._versions(tracking_store)
        exp = self.new_experiment(store)
        run_a, run_b = self.new_run(store, exp).id, self.new_run(store, exp).id
        name = f"ds-{_new_id()[:8]}"
        self.new_version(store, name, "1")
        self.new_version(store, name, "2")
        self.new_version(store, name, "m", kind="model")
        store.add_lineage(run_a, "dataset", name, 1, "input")
        store.add_lineage(run_a, "dataset", name, 1, "input")  # idempotent
        store.add_lineage(run_a, "model", name, 1, "output")
        store.add_lineage(run_b, "dataset", name, 2, "input")
        edges = store.lineage(run_id=run_a)
        assert sorted((e.kind, e.name, e.version, e.role) for e in edges) == [
            ("dataset", name, 1, "input"),
            ("model", name, 1, "output"),
        ]
        assert all(e.run_id == run_a and e.created_at > 0 for e in edges)
        assert [e.run_id for e in store.lineage(kind="dataset", name=name, version=2)] == [run_b]
        assert {e.run_id for e in store.lineage(kind="dataset", name=name)} == {run_a, run_b}
        assert [e.role for e in store.lineage(run_id=run_a, kind="model")] == ["output"]
        assert store.lineage(run_id=_new_id()) == []
        with pytest.raises(InvalidValue):
            store.add_lineage(run_a, "dataset", name, 1, "consumed")
        with pytest.raises(VersionNotFound):
            store.add_lineage(run_a, "dataset", name, 9, "input")
        with pytest.raises(DatasetNotFound):
            store.add_lineage(run_a, "dataset", f"{name}-nope", 1, "input")
        assert len(store.lineage(run_id=run_a)) == 2  # the refused calls added nothing

    def test_aliases_move_and_keep_their_history(self, tracking_store: TrackingStore) -> None:
        store = self._versions(tracking_store)
        name = f"model-{_new_id()[:8]}"
        for i in range(3):
            self.new_version(store, name, str(i), kind="model")
        assert store.aliases("model", name) == {}
        first = store.set_alias("model", name, "production", 1)
        assert (first.kind, first.name, first.alias, first.version) == ("model", name, "production", 1)
        store.set_alias("model", name, "staging", 3)
        store.set_alias("model", name, "production", 2)
        assert store.aliases("model", name) == {"production": 2, "staging": 3}
        store.set_alias("model", name, "staging", None)  # removed
        assert store.aliases("model", name) == {"production": 2}
        assert [e.version for e in store.alias_history("model", name, "production")] == [1, 2]
        history = store.alias_history("model", name, "staging")
        assert [e.version for e in history] == [3, None]
        assert history[0].set_at <= history[1].set_at
        assert store.alias_history("model", name, "never") == []
        with pytest.raises(VersionNotFound):
            store.set_alias("model", name, "production", 9)
        with pytest.raises(ModelNotFound):
            store.set_alias("model", f"{name}-nope", "production", 1)
        with pytest.raises(ModelNotFound):
            store.set_alias("model", f"{name}-nope", "production", None)
        assert store.aliases("model", name) == {"production": 2}  # refused moves changed nothing
        assert [e.version for e in store.alias_history("model", name, "production")] == [1, 2]
        assert store.alias_history("model", f"{name}-nope", "production") == []

    def test_unknown_names_and_versions_raise(self, tracking_store: TrackingStore) -> None:
        store = self._versions(tracking_store)
        name = f"x-{_new_id()[:8]}"
        self.new_version(store, name, "1")
        self.new_version(store, name, "1", kind="model")
        for kind, missing_name in (("dataset", DatasetNotFound), ("model", ModelNotFound)):
            with pytest.raises(missing_name):
                store.get_version(kind, f"{name}-nope", 1)
            with pytest.raises(missing_name):
                store.get_manifest(kind, f"{name}-nope", 1)
            with pytest.raises(missing_name):
                store.update_version(kind, f"{name}-nope", 1, message="m")
            for number in (0, 2, -1):
                with pytest.raises(VersionNotFound):
                    store.get_version(kind, name, number)
                with pytest.raises(VersionNotFound):
                    store.get_manifest(kind, name, number)
                with pytest.raises(VersionNotFound):
                    store.update_version(kind, name, number, message="m")
            assert store.list_versions(kind, f"{name}-nope") == []
        with pytest.raises(InvalidValue):
            store.get_version("pipeline", name, 1)
        with pytest.raises(InvalidValue):
            self.new_version(store, name, "1", kind="pipeline")
