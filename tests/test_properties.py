"""Property-based tests (hypothesis) through the public API and on the pure parts.

* Whatever valid names and values are logged read back identical.
* Invalid names are refused with ``InvalidName`` and leave the store unchanged.
* The filter parser only ever returns an expression or raises ``InvalidFilter``,
  and reads back what a formatter writes.
* Content-addressed objects round-trip, and corruption is detected.
"""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import mlops_sdk as mlops
from mlops_sdk.errors import IntegrityError, InvalidFilter, InvalidName, InvalidValue, MlopsError
from mlops_sdk.query import (
    ATTRIBUTE_ALIASES,
    COMPARE_OPS,
    LIST_OPS,
    NUMERIC_ATTRIBUTES,
    TEXT_OPS,
    And,
    Comparison,
    Expr,
    Or,
    param_number,
    parse_filter,
    parse_order_by,
)
from mlops_sdk.redact import REDACTED, is_secret_name
from mlops_sdk.storage.fsspec_storage import LocalStorage
from mlops_sdk.storage.objects import ObjectStore, bytes_digest
from mlops_sdk.validation import MAX_STEP, validate_key, validate_name

# Each example of the workspace tests writes to SQLite: keep the counts modest.
WORKSPACE_SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
PURE_SETTINGS = settings(max_examples=200, deadline=None)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# -- names, independently of mlops_sdk.validation -----------------------------------------
def _clean_text(s: str) -> bool:
    return bool(s) and s == s.strip() and not _CONTROL.search(s)


def is_valid_name(s: str) -> bool:
    """An entity name: no separators, not '.' or '..', no control chars, no outer space, <= 200."""
    return (
        _clean_text(s) and len(s) <= 200 and "/" not in s and "\\" not in s and s not in (".", "..")
    )


def is_valid_key(s: str) -> bool:
    """A metric/param/tag key: '/' inside only, no '//' or '.'/'..' segments, <= 250."""
    return (
        _clean_text(s)
        and len(s) <= 250
        and not s.startswith("/")
        and not s.endswith("/")
        and all(part not in ("", ".", "..") for part in s.split("/"))
    )


_chars = st.characters(codec="utf-8")  # any code point but lone surrogates
_segment = st.text(_chars.filter(lambda c: c != "/"), min_size=1, max_size=12)
names = st.text(_chars, min_size=1, max_size=40).filter(is_valid_name)
keys = st.lists(_segment, min_size=1, max_size=3).map("/".join).filter(is_valid_key)
plain_keys = keys.filter(lambda k: not is_secret_name(k))
secret_keys = st.builds(
    lambda word, pre, post: f"{pre}{word}{post}",
    st.sampled_from(
        ("api_key", "API_KEY", "hf_token", "dbPassword", "SECRET", "aws-secret-access-key", "auth")
    ),
    st.sampled_from(("", "my_", "PROD_")),
    st.sampled_from(("", "_2", "/v1")),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00")),  # NUL is refused: see below
)
param_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
tag_values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=60)
metric_values = st.floats()  # NaN, ±inf, -0.0, subnormals included


def same_value(a: Any, b: Any) -> bool:
    """Equal with the same JSON types all the way down (True is not 1, 1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return bool(a == b)


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _experiment(ws: mlops.Workspace) -> mlops.Experiment:
    return ws.experiment(f"prop-{uuid.uuid4().hex}")


# -- round-trips through the public API ---------------------------------------------------
def test_name_strategies_agree_with_validation() -> None:
    @given(names)
    @PURE_SETTINGS
    def name_ok(name: str) -> None:
        assert validate_name("experiment name", name) == name

    @given(keys)
    @PURE_SETTINGS
    def key_ok(key: str) -> None:
        assert validate_key("param key", key) == key

    name_ok()
    key_ok()


@given(name=names)
@WORKSPACE_SETTINGS
def test_experiment_names_round_trip(workspace: mlops.Workspace, name: str) -> None:
    exp = workspace.experiment(name)
    assert exp.name == name
    again = workspace.get_experiment(name)
    assert again.id == exp.id and again.name == name
    assert workspace.experiment(name).id == exp.id
    assert sum(e.name == name for e in workspace.experiments()) == 1


@given(
    initial=st.dictionaries(plain_keys, param_values, max_size=4),
    logged=st.dictionaries(plain_keys, param_values, max_size=4),
    one=st.tuples(plain_keys, param_values),
)
@WORKSPACE_SETTINGS
def test_params_round_trip(
    workspace: mlops.Workspace,
    initial: dict[str, Any],
    logged: dict[str, Any],
    one: tuple[str, Any],
) -> None:
    logged = {k: v for k, v in logged.items() if k not in initial}  # params are immutable
    expected = {**initial, **logged}
    key, value = one
    assume(key not in expected)
    expected[key] = value
    with _experiment(workspace).start_run(params=initial) as run:
        run.log_params(logged)
        run.log_param(key, value)
        run.log_params(logged)  # the same values again: a no-op
        assert same_value(run.params, expected)
    stored = workspace.get_run(run.id).params
    assert same_value(stored, expected), (stored, expected)


@given(
    params=st.dictionaries(
        secret_keys,
        st.one_of(st.text(max_size=10).map(lambda s: f"s3cr3t-{s}"), st.integers()),
        min_size=1,
        max_size=3,
    )
)
@WORKSPACE_SETTINGS
def test_secret_looking_params_are_redacted(
    workspace: mlops.Workspace, params: dict[str, Any]
) -> None:
    assert all(is_secret_name(k) for k in params)
    first, *rest = params
    with _experiment(workspace).start_run(params={first: params[first]}) as run:
        for key in rest:
            run.log_param(key, params[key])
    stored = workspace.get_run(run.id)
    assert dict(stored.params) == dict.fromkeys(params, REDACTED)
    record = repr(stored.record)
    for value in params.values():
        if isinstance(value, str):
            assert value not in record


@given(
    points=st.dictionaries(
        plain_keys,
        st.lists(st.tuples(metric_values, st.integers(0, MAX_STEP)), min_size=1, max_size=5),
        min_size=1,
        max_size=3,
    ),
    together=st.dictionaries(plain_keys, metric_values, max_size=3),
)
@WORKSPACE_SETTINGS
def test_metrics_round_trip(
    workspace: mlops.Workspace,
    points: dict[str, list[tuple[float, int]]],
    together: dict[str, float],
) -> None:
    together = {k: v for k, v in together.items() if k not in points}
    logged: dict[str, list[tuple[float, int, float]]] = {}
    with _experiment(workspace).start_run() as run:
        ts = 1_700_000_000.0
        for key, pts in points.items():
            for value, step in pts:
                ts += 1
                run.log_metric(key, value, step=step, timestamp=ts)
                logged.setdefault(key, []).append((value, step, ts))
        run.log_metrics(together, step=7, timestamp=ts + 1)
        for key, value in together.items():
            logged[key] = [(value, 7, ts + 1)]
    stored = workspace.get_run(run.id)
    assert set(stored.metrics) == set(logged)
    for key, pts in logged.items():
        expected = sorted(pts, key=lambda p: (p[1], p[2]))
        history = stored.metric_history(key)
        assert [(m.step, m.timestamp) for m in history] == [(p[1], p[2]) for p in expected]
        assert all(same_float(m.value, p[0]) for m, p in zip(history, expected, strict=True))
        assert same_float(stored.metrics[key], expected[-1][0])


@given(
    initial=st.dictionaries(keys, tag_values, max_size=3),
    later=st.lists(st.tuples(keys, tag_values), max_size=5),
)
@WORKSPACE_SETTINGS
def test_tags_round_trip_last_value_wins(
    workspace: mlops.Workspace, initial: dict[str, str], later: list[tuple[str, str]]
) -> None:
    expected = dict(initial)
    with _experiment(workspace).start_run(tags=initial) as run:
        for key, value in later:
            run.set_tag(key, value)
            expected[key] = value
        run.set_tags(dict(later[:2]))
        expected.update(dict(later[:2]))
    assert workspace.get_run(run.id).tags == expected


@given(name=keys)
@WORKSPACE_SETTINGS
def test_run_names_round_trip(workspace: mlops.Workspace, name: str) -> None:
    with _experiment(workspace).start_run(name=name) as run:
        pass
    assert workspace.get_run(run.id).name == name


# -- invalid names leave the store unchanged ---------------------------------------------
_control = st.sampled_from([chr(i) for i in range(32)] + ["\x7f"])


@st.composite
def bad_texts(draw: st.DrawFn) -> str:
    """Names no entity or key may have: empty, blank, control characters, outer spaces, surrogates."""
    good = draw(st.sampled_from(("a", "loss", "x y", "ü")))
    kind = draw(st.sampled_from(("empty", "blank", "control", "lead", "trail", "surrogate")))
    if kind == "empty":
        return ""
    if kind == "blank":
        return draw(st.text(st.sampled_from(" \t\u00a0\u2003"), min_size=1, max_size=4))
    if kind == "control":
        at = draw(st.integers(0, len(good)))
        return good[:at] + draw(_control) + good[at:]
    if kind == "lead":
        return draw(st.sampled_from((" ", "\u00a0", "\u3000"))) + good
    if kind == "surrogate":
        return good + draw(st.sampled_from(("\udcff", "\ud800")))
    return good + draw(st.sampled_from((" ", "\u00a0", "\u3000")))


bad_keys = st.one_of(
    bad_texts(),
    st.sampled_from(
        ("/loss", "loss/", "a//b", "..", ".", "a/../b", "a/./b", "../../etc/passwd", "x" * 251)
    ),
)
bad_names = st.one_of(
    bad_texts(),
    st.sampled_from(("a/b", "/", "..", ".", "a\\b", "../x", "x" * 201)),
)


def _snapshot(ws: mlops.Workspace) -> tuple[list[str], int]:
    return [e.name for e in ws.experiments()], ws.tracking.count_runs(None)


@given(name=bad_names)
@WORKSPACE_SETTINGS
def test_invalid_experiment_names_are_refused(workspace: mlops.Workspace, name: str) -> None:
    before = _snapshot(workspace)
    with pytest.raises(InvalidName):
        workspace.experiment(name)
    with pytest.raises(InvalidName):
        workspace.get_experiment(name)
    assert _snapshot(workspace) == before


@given(key=bad_keys, where=st.sampled_from(("run name", "params", "tags")))
@WORKSPACE_SETTINGS
def test_invalid_names_at_run_start_create_nothing(
    workspace: mlops.Workspace, key: str, where: str
) -> None:
    exp = workspace.experiment("fixed")
    before = _snapshot(workspace)
    with pytest.raises(InvalidName):
        if where == "run name":
            exp.start_run(name=key)
        elif where == "params":
            exp.start_run(params={"ok": 1, key: 2})
        else:
            exp.start_run(tags={"ok": "1", key: "2"})
    assert _snapshot(workspace) == before
    assert mlops.active_run() is None


@given(key=bad_keys)
@WORKSPACE_SETTINGS
def test_invalid_keys_while_logging_change_nothing(workspace: mlops.Workspace, key: str) -> None:
    with _experiment(workspace).start_run() as run:
        for call in (
            lambda: run.log_param(key, 1),
            lambda: run.log_params({"fine": 1, key: 2}),
            lambda: run.log_metric(key, 1.0),
            lambda: run.log_metrics({"fine": 1.0, key: 2.0}, step=0),
            lambda: run.set_tag(key, "v"),
            lambda: run.set_tags({"fine": "v", key: "w"}),
        ):
            with pytest.raises(InvalidName):
                call()
    stored = workspace.get_run(run.id)
    assert stored.status == mlops.RunStatus.FINISHED
    assert stored.params == {} and stored.tags == {}
    # log_metrics checks each key as it goes: "fine" may land, the bad key never does
    assert set(stored.metrics) <= {"fine"}


@pytest.mark.parametrize(
    "log",
    [
        lambda run: run.log_param("p", "bad \udcff value"),
        lambda run: run.log_param("p", {"k\udcff": 1}),
        lambda run: run.set_tag("t", "bad \udcff value"),
        lambda run: run.log_metric("m\udcff", 1.0),
        lambda run: run.log_metric("m", 1.0, step=MAX_STEP + 1),
        lambda run: run.log_metric("m", 10**400),
        lambda run: run.log_param("p", 10**5000),
    ],
    ids=[
        "param-surrogate",
        "param-dict-key-surrogate",
        "tag-surrogate",
        "metric-key-surrogate",
        "step-too-big",
        "metric-int-too-big",
        "param-int-too-long",
    ],
)
def test_unstorable_values_are_refused_at_once(workspace: mlops.Workspace, log: Any) -> None:
    """Regression: these used to be queued, then failed in the background writer forever,
    blocking every later write of the workspace (or raised a raw UnicodeEncodeError)."""
    with _experiment(workspace).start_run() as run:
        with pytest.raises((InvalidValue, InvalidName)):
            log(run)
        run.log_metric("after", 1.0)
        run.set_tag("after", "ok")
    stored = workspace.get_run(run.id)
    assert stored.status == mlops.RunStatus.FINISHED
    assert (
        stored.metrics == {"after": 1.0} and stored.tags == {"after": "ok"} and stored.params == {}
    )


def test_huge_int_param_is_stored_and_searchable(workspace: mlops.Workspace) -> None:
    """Regression: an int beyond float range made the SQL store fail in the background writer."""
    big = 10**400
    exp = _experiment(workspace)
    with exp.start_run(params={"n": big}) as run:
        pass
    assert workspace.get_run(run.id).params["n"] == big
    assert param_number(big) is None
    assert len(exp.runs(f"params.n = '{big}'")) == 1
    assert len(exp.runs("params.n > 0")) == 0


# -- the filter parser ----------------------------------------------------------------------
_TOKENS = (
    "metrics.acc",
    "params.n",
    "tags.t",
    "attributes.name",
    "name",
    "status",
    "start_time",
    "metrics.",
    "`a b`",
    "'x'",
    '"y"',
    "1",
    "-2.5",
    "1e999",
    "nan",
    "inf",
    "=",
    "==",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "like",
    "ILIKE",
    "in",
    "not",
    "and",
    "OR",
    "(",
    ")",
    ",",
    "'",
    "`",
    "\\",
    "metrics.`k`",
    "foo.bar",
    "",
)


@given(text=st.one_of(st.text(), st.lists(st.sampled_from(_TOKENS), max_size=12).map(" ".join)))
@PURE_SETTINGS
def test_parse_filter_returns_an_expression_or_raises_invalid_filter(text: str) -> None:
    try:
        expr = parse_filter(text)
    except InvalidFilter:
        return
    assert expr is None or isinstance(expr, (Comparison, And, Or))
    if expr is None:
        assert not text.strip()


@given(
    items=st.lists(
        st.one_of(
            st.text(max_size=20), st.lists(st.sampled_from(_TOKENS), max_size=4).map(" ".join)
        ),
        max_size=3,
    )
)
@PURE_SETTINGS
def test_parse_order_by_returns_keys_or_raises_invalid_filter(items: list[str]) -> None:
    with contextlib.suppress(InvalidFilter):
        parse_order_by(items)


@pytest.mark.parametrize("depth", [200, 5000])
def test_deeply_nested_filter_is_an_invalid_filter_not_a_crash(depth: int) -> None:
    """Regression: deep nesting raised RecursionError."""
    text = "(" * depth + "metrics.a > 1" + ")" * depth
    try:
        expr = parse_filter(text)
    except InvalidFilter:
        return
    assert expr == Comparison("metrics", "a", ">", 1.0)


def _quote(text: str, quote: str) -> str:
    return quote + text.replace("\\", "\\\\").replace(quote, quote * 2) + quote


def _number(value: float) -> str:
    if value == math.inf:
        return "inf"
    if value == -math.inf:
        return "-1e999"
    return repr(value)


def _value(value: float | str) -> str:
    return _quote(value, "'") if isinstance(value, str) else _number(value)


def format_filter(expr: Expr) -> str:
    """Write an expression back as filter text (the inverse of :func:`parse_filter`)."""
    if isinstance(expr, (And, Or)):
        word = " and " if isinstance(expr, And) else " OR "
        return word.join(
            f"({format_filter(e)})" if isinstance(e, (And, Or)) else format_filter(e)
            for e in expr.items
        )
    field = (
        f"attributes.{expr.key}"
        if expr.field == "attributes"
        else f"{expr.field}.{_quote(expr.key, chr(34))}"
    )
    if isinstance(expr.value, tuple):
        return f"{field} {expr.op} ({', '.join(_value(v) for v in expr.value)})"
    return f"{field} {expr.op} {_value(expr.value)}"


_filter_numbers = st.floats(allow_nan=False)
_filter_texts = st.text(max_size=10)


@st.composite
def comparisons(draw: st.DrawFn) -> Comparison:
    field = draw(st.sampled_from(("metrics", "params", "tags", "attributes")))
    if field == "attributes":
        key = draw(st.sampled_from(sorted(set(ATTRIBUTE_ALIASES.values()))))
        kind = "number" if key in NUMERIC_ATTRIBUTES else "text"
    else:
        key = draw(st.text(min_size=1, max_size=12))
        kind = {"metrics": "number", "tags": "text", "params": "any"}[field]
    op = draw(st.sampled_from(COMPARE_OPS + LIST_OPS + (TEXT_OPS if kind != "number" else ())))
    single: st.SearchStrategy[Any] = {
        "number": _filter_numbers,
        "text": _filter_texts,
        "any": st.one_of(_filter_numbers, _filter_texts),
    }[kind]
    if op in TEXT_OPS:
        return Comparison(field, key, op, draw(_filter_texts))
    if op in LIST_OPS:
        return Comparison(field, key, op, tuple(draw(st.lists(single, min_size=1, max_size=3))))
    return Comparison(field, key, op, draw(single))


filters: st.SearchStrategy[Expr] = st.recursive(
    comparisons(),
    lambda children: st.one_of(
        st.builds(And, st.lists(children, min_size=2, max_size=3).map(tuple)),
        st.builds(Or, st.lists(children, min_size=2, max_size=3).map(tuple)),
    ),
    max_leaves=6,
)


@given(expr=filters)
@PURE_SETTINGS
def test_filter_text_round_trips(expr: Expr) -> None:
    text = format_filter(expr)
    assert parse_filter(text) == expr, text


# -- content-addressed objects ----------------------------------------------------------------
@given(data=st.binary(max_size=4096))
@WORKSPACE_SETTINGS
def test_objects_round_trip(tmp_path: Path, data: bytes) -> None:
    objects = ObjectStore(LocalStorage(f"file://{tmp_path / uuid.uuid4().hex}"))
    digest, size = objects.put_bytes(data)
    assert digest == bytes_digest(data) and size == len(data)
    assert objects.put_bytes(data) == (digest, size)  # stored once
    assert objects.get_bytes(digest) == data
    assert objects.open(digest).read() == data
    assert objects.verify(digest)
    dest = tmp_path / uuid.uuid4().hex / "copy.bin"
    objects.get_file(digest, dest)
    assert dest.read_bytes() == data
    assert list(objects.storage.list()) == [objects.key(digest)]


@given(
    data=st.binary(min_size=1, max_size=4096),
    where=st.integers(min_value=0),
    flip=st.integers(1, 255),
)
@WORKSPACE_SETTINGS
def test_corrupted_object_is_detected(tmp_path: Path, data: bytes, where: int, flip: int) -> None:
    storage = LocalStorage(f"file://{tmp_path / uuid.uuid4().hex}")
    objects = ObjectStore(storage)
    digest, _ = objects.put_bytes(data)
    key = objects.key(digest)
    path = storage.local_path(key)
    assert path is not None
    raw = bytearray(path.read_bytes())
    raw[where % len(raw)] ^= flip
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=re.escape(key)):
        objects.get_bytes(digest)
    with pytest.raises(IntegrityError, match=re.escape(key)):
        objects.open(digest)
    assert not objects.verify(digest)
    dest = tmp_path / uuid.uuid4().hex / "copy.bin"
    with pytest.raises(IntegrityError, match=re.escape(key)):
        objects.get_file(digest, dest)
    assert not dest.exists()
    assert not dest.parent.exists() or not any(dest.parent.iterdir())


def test_corrupted_artifact_is_detected_through_a_run(
    workspace: mlops.Workspace, tmp_path: Path
) -> None:
    source = tmp_path / "model.txt"
    source.write_bytes(b"weights " * 100)
    with _experiment(workspace).start_run() as run:
        (entry,) = run.log_artifact(source)
    key = workspace.objects.key(entry.digest)
    path = workspace.storage.local_path(key)
    assert path is not None
    path.write_bytes(b"tampered" + path.read_bytes()[8:])
    with pytest.raises(IntegrityError, match=re.escape(key)):
        workspace.get_run(run.id).read_artifact("model.txt")
    with pytest.raises(MlopsError):
        workspace.get_run(run.id).download_artifacts(tmp_path / "out")


def test_nul_in_param_string_is_refused_and_nothing_stored(workspace: mlops.Workspace) -> None:
    """PostgreSQL text cannot hold NUL, so every store refuses it alike, before writing."""
    with workspace.experiment("nul").start_run(params={"ok": 1}) as run:
        with pytest.raises(InvalidValue, match="NUL"):
            run.log_param("bad", "a\x00b")
        with pytest.raises(InvalidValue, match="NUL"):
            run.log_params({"fine": 2, "bad": ["x\x00"]})
    assert workspace.get_run(run.id).params == {"ok": 1}
