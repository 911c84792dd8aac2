"""The pure parts of the plugin: URIs, value encoding, filter translation, ordering, chunking."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlops_sdk.errors import ConfigError, InvalidName, InvalidValue
from mlops_sdk.query import OrderKey, parse_filter
from mlops_sdk.records import RunRecord, RunStatus
from mlops_sdk.testing.tracking_conformance import reference_order

from mlops_sdk_mlflow import codec
from mlops_sdk_mlflow.filters import mlflow_order, order_records, to_mlflow_filter
from mlops_sdk_mlflow.tracking import _chunks
from mlops_sdk_mlflow.uris import to_mlflow_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mlflow+http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("mlflow+https://mlflow.example.com/", "https://mlflow.example.com"),
        (
            "mlflow+https://user:pw@mlflow.example.com/prefix",
            "https://user:pw@mlflow.example.com/prefix",
        ),
        ("mlflow+databricks", "databricks"),
        ("mlflow+databricks://my-profile", "databricks://my-profile"),
        (
            "mlflow+azureml://eastus.api.azureml.ms/mlflow/v1.0/x",
            "azureml://eastus.api.azureml.ms/mlflow/v1.0/x",
        ),
    ],
)
def test_uris(uri: str, expected: str) -> None:
    assert to_mlflow_uri(uri) == expected


@pytest.mark.parametrize(
    "uri", ["mlflow+ftp://host", "mlflow+http://", "mlflow+http:///path", "http://host"]
)
def test_bad_uris(uri: str) -> None:
    with pytest.raises(ConfigError):
        to_mlflow_uri(uri)


PARAMS: dict[str, Any] = {
    "int": 7,
    "big": 2**70,
    "float": 0.1,
    "tiny": 5e-324,
    "true": True,
    "none": None,
    "text": "héllo\nwörld",
    "empty": "",
    "looks_like_number": "1.5",
    "looks_like_json": "[1, 2]",
    "looks_like_null": "null",
    "list": [1, "a", None],
    "dict": {"b": 1, "a": [True]},
}


def test_params_round_trip_with_their_types() -> None:
    encoded = {k: codec.encode_param(k, v) for k, v in PARAMS.items()}
    stored = {k: text for k, (text, _) in encoded.items()}
    tags = dict(codec.param_json_tags(k for k, (_, is_json) in encoded.items() if is_json))
    assert stored["int"] == "7" and stored["true"] == "true" and stored["text"] == PARAMS["text"]
    assert stored["dict"] == '{"a": [true], "b": 1}'  # the same text filters compare against
    decoded = codec.decode_params(stored, tags)
    assert decoded == PARAMS
    assert {k: type(v) for k, v in decoded.items()} == {k: type(v) for k, v in PARAMS.items()}
    assert codec.user_tags(tags) == {}


def test_json_type_tags_stay_within_mlflow_limits() -> None:
    keys = [f"{i:03d}" + "k" * 240 for i in range(100)]
    tags = codec.param_json_tags(keys)
    assert len(tags) > 1 and all(len(v) <= codec.MAX_TAG_VALUE for _, v in tags)
    assert codec.json_param_keys(dict(tags)) == set(keys)
    assert len({k for k, _ in tags}) == len(tags)
    assert codec.param_json_tags([]) == []


def test_json_types_from_several_tags_and_foreign_runs() -> None:
    tags = {
        "mlops.param_json.a": '["x"]',
        "mlops.param_json.b": '["y"]',
        "mlops.param_json.bad": "{",
    }
    assert codec.decode_params({"x": "1", "y": "[1]", "z": "2"}, tags) == {
        "x": 1,
        "y": [1],
        "z": "2",
    }
    assert codec.decode_params({"x": "not json"}, {"mlops.param_json.a": '["x"]'}) == {
        "x": "not json"
    }


def test_internal_tags_are_hidden() -> None:
    tags = {
        "team": "a",
        "mlflow.runName": "r",
        "mlflow.parentRunId": "p",
        "mlflow.source_run_id": "s",
        "mlops.error": "boom",
        "mlops.param_json.1": "[]",
        "mlops.other": "kept",
    }
    assert codec.user_tags(tags) == {
        "team": "a",
        "mlflow.source_run_id": "s",
        "mlops.other": "kept",
    }


@pytest.mark.parametrize("key", ["loss", "val loss", "train/loss", "a:b", "t.2", "p-1", "ünï"])
def test_keys_mlflow_accepts(key: str) -> None:
    assert codec.check_key("metric key", key) == key


@pytest.mark.parametrize("key", ["acc@1", "f1(macro)", "a/../b", "./a", "/a", "a" * 251, ""])
def test_keys_mlflow_refuses(key: str) -> None:
    with pytest.raises(InvalidName):
        codec.check_key("metric key", key)


def test_value_limits() -> None:
    with pytest.raises(InvalidValue, match="6000"):
        codec.encode_param("p", "x" * 6001)
    with pytest.raises(InvalidValue, match="8000"):
        codec.check_tag("t", "x" * 8001)
    tail = codec.error_tail("a" * 5000 + "b" * 5000)
    assert len(tail) == codec.MAX_TAG_VALUE and tail.endswith("b" * 5000) and "truncated" in tail


def test_metric_values_and_times() -> None:
    assert codec.metric_from_mlflow(codec.DBL_MAX) == math.inf
    assert codec.metric_from_mlflow(-codec.DBL_MAX) == -math.inf
    assert codec.metric_from_mlflow(1.5) == 1.5
    assert codec.to_millis(1234.5) == 1234500 and codec.from_millis(1234500) == 1234.5
    assert codec.to_millis(1.0004) == 1000  # sub-millisecond precision is lost


def test_context_maps_to_mlflow_source_tags() -> None:
    context = {
        "git": {"commit": "abc", "branch": "main", "remote": "git@x:y.git"},
        "command": {"argv": ["train.py", "-n"]},
    }
    tags = codec.context_tags(context)
    assert tags == {
        "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": "abc",
        "mlflow.source.git.branch": "main",
        "mlflow.source.git.repoURL": "git@x:y.git",
        "mlflow.source.name": "train.py",
    }
    assert codec.context_from_tags(tags) == {
        "git": {"commit": "abc", "branch": "main", "remote": "git@x:y.git"},
        "command": {"argv": ["train.py"]},
    }
    assert codec.context_tags({}) == {"mlflow.source.type": "LOCAL"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.acc > 0.8", "metrics.`acc` > 0.8"),
        (
            "metrics.`val loss` <= -1.5 and params.n = '100'",
            "metrics.`val loss` <= -1.5 and params.`n` = '100'",
        ),
        (
            "tags.team like 'gr%' and name != 'x'",
            "tags.`team` LIKE 'gr%' and attributes.run_name != 'x'",
        ),
        ("status = 'FINISHED'", "attributes.status = 'FINISHED'"),
        ("parent_id = 'abc'", "tags.`mlflow.parentRunId` = 'abc'"),
        ("id in ('a', 'b')", "attributes.run_id IN ('a', 'b')"),
        ("start_time > 1000.5", "attributes.start_time >= 1000499"),
        ("end_time = 2", "attributes.end_time >= 1999 and attributes.end_time <= 2001"),
        # not expressible in MLflow, left to the client-side check
        ("metrics.acc > 0.8 or tags.team = 'a'", ""),
        ("params.n > 5", ""),
        ("params.n = 100", ""),
        ("tags.team ilike 'GR%'", ""),
        ("tags.team in ('a', 'b')", ""),
        ("status = 'RUNNING'", ""),
        ("metrics.acc = nan", ""),
        ("metrics.acc < -1e300", ""),
        ("tags.t = 'it''s'", ""),
        ("tags.t like 'x\\\\_y'", ""),  # a backslash: an escape character on some databases
        ("metrics.acc > 0.5 and (tags.a = 'x' or tags.b = 'y')", "metrics.`acc` > 0.5"),
        (
            "(metrics.acc > 0.5 and tags.a = 'x') and metrics.acc > 0.5",
            "metrics.`acc` > 0.5 and tags.`a` = 'x'",
        ),
    ],
)
def test_filter_translation(text: str, expected: str) -> None:
    assert to_mlflow_filter(parse_filter(text)) == expected


def test_order_handed_to_mlflow_only_when_it_is_the_same() -> None:
    assert mlflow_order([]) == []
    assert mlflow_order([OrderKey("attributes", "start_time")]) == ["attributes.start_time ASC"]
    assert mlflow_order([OrderKey("attributes", "start_time", True)]) == [
        "attributes.start_time DESC"
    ]
    assert mlflow_order([OrderKey("metrics", "acc")]) is None
    assert mlflow_order([OrderKey("attributes", "name")]) is None


_values = st.one_of(
    st.none(), st.integers(-2, 2), st.sampled_from((0.5, "1", "x", "", True, math.nan, math.inf))
)


@st.composite
def _records(draw: st.DrawFn) -> RunRecord:
    metric = draw(st.sampled_from((None, 0.0, 1.0, math.nan, math.inf, -1.0)))
    param = draw(_values)
    return RunRecord(
        id=draw(st.text("abc", min_size=3, max_size=3)),
        experiment_id="1",
        name=draw(st.sampled_from(("a", "b", "B"))),
        status=draw(st.sampled_from(list(RunStatus))),
        start_time=float(draw(st.integers(0, 3))),
        params={}
        if param is None or (isinstance(param, float) and not math.isfinite(param))
        else {"p": param},
        metrics={} if metric is None else {"m": metric},
        tags=draw(st.dictionaries(st.just("t"), st.sampled_from(("a", "b", "")), max_size=1)),
    )


@given(
    records=st.lists(_records(), max_size=8),
    order_by=st.lists(
        st.sampled_from(
            [
                OrderKey(f, k, d)
                for f, k in (
                    ("metrics", "m"),
                    ("params", "p"),
                    ("tags", "t"),
                    ("attributes", "name"),
                    ("attributes", "status"),
                )
                for d in (False, True)
            ]
        ),
        max_size=3,
    ),
)
@settings(max_examples=200, deadline=None)
def test_order_records_is_the_reference_order(
    records: list[RunRecord], order_by: list[OrderKey]
) -> None:
    assert [r.id for r in order_records(records, order_by)] == [
        r.id for r in reference_order(records, order_by)
    ]


def test_chunks_stay_within_mlflow_limits() -> None:
    params = [(f"p{i}", "v" * 5000, i % 2 == 0) for i in range(250)]
    tags = [(f"t{i}", "w" * 7000) for i in range(250)]
    metrics = [(f"m{i % 7}", float(i), i, i) for i in range(2600)]
    chunks = list(_chunks(params, tags, metrics))
    for p, t, m in chunks:
        assert (
            len(p) <= codec.MAX_PARAMS_TAGS_PER_BATCH and len(t) <= codec.MAX_PARAMS_TAGS_PER_BATCH
        )
        assert (
            len(m) <= codec.MAX_METRICS_PER_BATCH
            and len(p) + len(t) + len(m) <= codec.MAX_ENTITIES_PER_BATCH
        )
        body = json.dumps({"params": p, "tags": t, "metrics": m})
        assert len(body.encode()) < codec.MAX_BATCH_BYTES
    assert [x for p, _, _ in chunks for x in p] == params
    assert [x for _, t, _ in chunks for x in t] == tags
    assert [x for _, _, m in chunks for x in m] == metrics
    assert list(_chunks([], [], [])) == []
