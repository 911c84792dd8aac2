"""Promotion gates as pure functions: requirements, better-than comparisons, reports."""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mlops_sdk as mlops
from mlops_sdk import gate
from mlops_sdk.errors import GateFailed, InvalidFilter, InvalidValue


@dataclass(frozen=True)
class Facts:
    """A model version as a gate sees it (the real ModelVersion is used in test_cli_models.py)."""

    version: int = 3
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    name: str = "churn-clf"


OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq, "!=": operator.ne}
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
keys = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda k: k.lower() not in {"and", "or", "not", "in", "like", "ilike"}
)


# -- requirements ----------------------------------------------------------------------------
def test_metric_requirement_passes_and_fails_with_reasons() -> None:
    mv = Facts(metrics={"accuracy": 0.93, "rmse": 31.5})
    ok = gate.check_requirement(mv, "metrics.accuracy >= 0.9")
    assert (ok.passed, ok.actual, ok.expected) == (True, 0.93, 0.9)
    assert ok.reason == "metrics.accuracy is 0.93 (>= 0.9)"
    bad = gate.check_requirement(mv, "metrics.rmse < 30")
    assert (bad.passed, bad.actual) == (False, 31.5)
    assert bad.reason == "metrics.rmse is 31.5, needs < 30"


def test_missing_metric_fails_with_not_logged() -> None:
    check = gate.check_requirement(Facts(metrics={"acc": 0.99}), "metrics.accuracy >= 0.9")
    assert not check.passed
    assert check.actual is None
    assert check.reason == "metric accuracy was not logged"


def test_nan_metric_fails_every_comparison() -> None:
    mv = Facts(metrics={"loss": math.nan})
    for text in ("metrics.loss < 1", "metrics.loss >= 0", "metrics.loss != 3"):
        check = gate.check_requirement(mv, text)
        assert not check.passed and check.reason == "metric loss is NaN"


def test_tag_requirements() -> None:
    mv = Facts(tags={"approved": "yes", "stage": "staging"})
    assert gate.check_requirement(mv, "tags.approved = 'yes'").passed
    assert gate.check_requirement(mv, "tags.stage in ('staging', 'prod')").passed
    assert gate.check_requirement(mv, "tags.stage like 'stag%'").passed
    no = gate.check_requirement(mv, "tags.approved = 'no'")
    assert not no.passed and no.reason == "tags.approved is 'yes', needs = 'no'"
    unset = gate.check_requirement(mv, "tags.owner = 'ada'")
    assert not unset.passed and unset.reason == "tag owner is not set"


def test_compound_requirement_reports_every_field() -> None:
    mv = Facts(metrics={"accuracy": 0.88}, tags={"approved": "yes"})
    either = gate.check_requirement(mv, "metrics.accuracy >= 0.9 or tags.approved = 'yes'")
    assert either.passed
    assert either.actual == {"metrics.accuracy": 0.88, "tags.approved": "yes"}
    both = gate.check_requirement(mv, "metrics.accuracy >= 0.9 and tags.approved = 'yes'")
    assert not both.passed and both.reason == "metrics.accuracy is 0.88, needs >= 0.9"
    neither = gate.check_requirement(mv, "metrics.accuracy >= 0.9 or metrics.f1 > 0.5")
    assert not neither.passed
    assert neither.reason == "none holds: metrics.accuracy is 0.88, needs >= 0.9; metric f1 was not logged"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty requirement"),
        ("   ", "empty requirement"),
        ("metrics.accuracy >=", "ends too early"),
        ("metrics.accuracy >= 'high'", "is numeric"),
        ("tags.approved = 1", "is text"),
        ("params.n = 100", "params.n is not something a model version has"),
        ("status = 'FINISHED'", "status is not something a model version has"),
        ("accuracy > 0.9", "unknown field"),
        ("metrics.accuracy >= 0.9 and", "ends too early"),
    ],
)
def test_bad_requirements_are_typed_errors(text: str, fragment: str) -> None:
    with pytest.raises(InvalidFilter, match="requirement") as info:
        gate.Requirement.parse(text)
    assert fragment in str(info.value)


def test_requirement_must_be_a_string() -> None:
    with pytest.raises(InvalidFilter, match="must be a string"):
        gate.Requirement.parse(0.9)  # type: ignore[arg-type]


@given(key=keys, value=finite, threshold=finite, op=st.sampled_from(sorted(OPS)))
def test_comparison_agrees_with_python(key: str, value: float, threshold: float, op: str) -> None:
    check = gate.check_requirement(Facts(metrics={key: value}), f"metrics.{key} {op} {threshold!r}")
    assert check.passed == OPS[op](value, threshold)
    assert check.actual == value
    assert (f"metrics.{key} is " in check.reason) and (check.passed or "needs" in check.reason)


@given(key=keys, text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20))
def test_tag_values_round_trip_through_quoting(key: str, text: str) -> None:
    quoted = "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    assert gate.check_requirement(Facts(tags={key: text}), f"tags.{key} = {quoted}").passed
    assert not gate.check_requirement(Facts(tags={key: text + "x"}), f"tags.{key} = {quoted}").passed


# -- better than a baseline ---------------------------------------------------------------------
def test_better_than_on_every_required_metric() -> None:
    candidate = Facts(version=3, metrics={"accuracy": 0.93, "rmse": 25.0})
    production = Facts(version=2, metrics={"accuracy": 0.91, "rmse": 20.0})
    report = gate.evaluate(
        candidate,
        ["metrics.accuracy >= 0.9", "metrics.rmse < 30"],
        better_than=production,
        alias="production",
    )
    assert not report.passed
    assert (report.baseline_alias, report.baseline_version) == ("production", 2)
    by_requirement = {c.requirement: c for c in report.checks}
    acc = by_requirement["metrics.accuracy better than production (v2)"]
    assert acc.passed and acc.kind == "better_than" and (acc.actual, acc.expected) == (0.93, 0.91)
    rmse = by_requirement["metrics.rmse better than production (v2)"]
    assert not rmse.passed
    assert rmse.reason.startswith("25 is not below 20 of production (v2)")
    assert rmse.reason.endswith("[lower is better, per the requirement]")
    assert [c.requirement for c in report.failures] == ["metrics.rmse better than production (v2)"]


def test_missing_alias_target_means_nothing_to_beat() -> None:
    report = gate.evaluate(Facts(metrics={"accuracy": 0.95}), ["metrics.accuracy >= 0.9"], None, alias="production")
    assert report.passed
    assert report.baseline_version is None
    [_, nothing] = report.checks
    assert nothing.passed and nothing.reason == "alias production points at no version yet: nothing to beat"
    assert report.to_dict()["baseline"] == {"alias": "production", "version": None}


def test_baseline_without_the_metric_or_with_nan_is_nothing_to_beat() -> None:
    candidate = Facts(metrics={"f1": 0.7})
    for baseline in (Facts(version=1, metrics={}), Facts(version=1, metrics={"f1": math.nan})):
        report = gate.evaluate(candidate, (), baseline, metric="f1", alias="production")
        assert report.passed, report.explain()
        assert "nothing to beat" in report.checks[0].reason


def test_candidate_missing_or_nan_metric_loses() -> None:
    baseline = Facts(version=1, metrics={"f1": 0.5})
    missing = gate.evaluate(Facts(metrics={}), (), baseline, metric="f1")
    assert not missing.passed and missing.checks[0].reason == "metric f1 was not logged"
    nan = gate.evaluate(Facts(metrics={"f1": math.nan}), (), baseline, metric="f1")
    assert not nan.passed and nan.checks[0].reason == "metric f1 is NaN"


def test_a_tie_is_not_better() -> None:
    report = gate.evaluate(Facts(metrics={"auc": 0.8}), (), Facts(version=1, metrics={"auc": 0.8}), metric="auc")
    assert not report.passed
    assert report.checks[0].reason.startswith("0.8 is not above 0.8 of v1")


def test_the_baseline_itself_passes() -> None:
    same = Facts(version=2, metrics={"auc": 0.8})
    report = gate.evaluate(same, ["metrics.auc > 0.5"], same, alias="production")
    assert report.passed
    assert "already points at" in report.checks[-1].reason


def test_explicit_metric_and_mode() -> None:
    candidate = Facts(metrics={"latency_ms": 12.0, "accuracy": 0.5})
    baseline = Facts(version=1, metrics={"latency_ms": 10.0, "accuracy": 0.9})
    # only --metric is compared, never the required ones
    report = gate.evaluate(candidate, ["metrics.accuracy > 0.1"], baseline, metric="metrics.latency_ms", mode="max")
    assert [c.requirement for c in report.checks] == ["metrics.accuracy > 0.1", "metrics.latency_ms better than v1"]
    assert report.passed and report.checks[1].reason.endswith("[higher is better: mode max]")
    by_name = gate.evaluate(candidate, (), baseline, metric="latency_ms")
    assert not by_name.passed and by_name.checks[0].reason.endswith("[lower is better: the name says loss/error]")


def test_better_than_needs_a_metric() -> None:
    with pytest.raises(InvalidValue, match="needs a metric"):
        gate.evaluate(Facts(), ["tags.approved = 'yes'"], Facts(version=1), alias="production")
    with pytest.raises(InvalidValue, match="mode must be"):
        gate.evaluate(Facts(metrics={"a": 1.0}), (), Facts(version=1), metric="a", mode="up")
    with pytest.raises(InvalidValue, match="metric must be"):
        gate.evaluate(Facts(metrics={"a": 1.0}), (), Facts(version=1), metric=" ")


@given(ours=finite, theirs=finite, mode=st.sampled_from(gate.MODES))
def test_better_than_is_strict_and_antisymmetric(ours: float, theirs: float, mode: gate.Mode) -> None:
    a, b = Facts(version=2, metrics={"m": ours}), Facts(version=1, metrics={"m": theirs})
    a_wins = gate.evaluate(a, (), b, metric="m", mode=mode).passed
    b_wins = gate.evaluate(b, (), a, metric="m", mode=mode).passed
    assert a_wins == (ours > theirs if mode == "max" else ours < theirs)
    assert not (a_wins and b_wins)
    if ours == theirs:
        assert not a_wins and not b_wins


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("accuracy", "max"), ("f1", "max"), ("auc", "max"), ("r2", "max"), ("precision_at_10", "max"),
        ("loss", "min"), ("val_loss", "min"), ("valLoss", "min"), ("rmse", "min"), ("test.mae", "min"),
        ("mean_squared_error", "min"), ("error_rate", "min"), ("p95-latency", "min"), ("log_loss", "min"),
        ("neg_mean_squared_error", "max"), ("neg_log_loss", "max"), ("lossless_ratio", "max"),
    ],
)
def test_default_mode_rule(name: str, mode: str) -> None:
    assert gate.default_mode(name) == mode


def test_requirement_direction_beats_the_name_and_mode_beats_both() -> None:
    reqs = [gate.Requirement.parse("metrics.loss > 0.1")]  # odd but explicit: higher loss wanted
    assert gate.metric_mode("loss", reqs)[0] == "max"
    assert gate.metric_mode("loss", reqs, "min")[0] == "min"
    assert gate.metric_mode("loss", [gate.Requirement.parse("metrics.loss != 0")])[0] == "min"


# -- reports ------------------------------------------------------------------------------------
@given(
    values=st.dictionaries(keys, st.one_of(finite, st.just(math.nan)), max_size=4),
    thresholds=st.lists(st.tuples(keys, st.sampled_from(sorted(OPS)), finite), max_size=5),
)
def test_report_passes_exactly_when_every_check_passes(
    values: dict[str, float], thresholds: list[tuple[str, str, float]]
) -> None:
    reqs = [f"metrics.{k} {op} {t!r}" for k, op, t in thresholds]
    report = gate.evaluate(Facts(metrics=values), reqs)
    assert len(report.checks) == len(reqs)
    assert report.passed == all(c.passed for c in report.checks)
    for (key, op, threshold), check in zip(thresholds, report.checks, strict=True):
        value = values.get(key)
        expected = value is not None and not math.isnan(value) and OPS[op](value, threshold)
        assert check.passed == expected
    if report.passed:
        report.raise_for_failure()
    else:
        with pytest.raises(GateFailed) as info:
            report.raise_for_failure()
        for failed in report.failures:
            assert failed.requirement in str(info.value)


def test_report_to_dict_is_plain_data() -> None:
    report = gate.evaluate(
        Facts(metrics={"accuracy": 0.8}), ["metrics.accuracy >= 0.9"], Facts(version=1, metrics={"accuracy": 0.7}), alias="production"
    )
    data = report.to_dict()
    assert data["passed"] is False
    assert data["baseline"] == {"alias": "production", "version": 1}
    assert data["checks"][0] == {
        "requirement": "metrics.accuracy >= 0.9",
        "kind": "require",
        "actual": 0.8,
        "expected": 0.9,
        "passed": False,
        "reason": "metrics.accuracy is 0.8, needs >= 0.9",
    }
    assert report.explain().startswith("churn-clf v3 failed 1 of 2 check(s): metrics.accuracy >= 0.9: ")


# -- promote: the gate in front of a real registry ------------------------------------------------
def test_promote_against_real_model_versions(workspace: mlops.Workspace) -> None:
    pytest.importorskip("skops")
    from sklearn.dummy import DummyClassifier

    X, y = [[0.0], [1.0]], [0, 1]
    clf = DummyClassifier().fit(X, y)
    with workspace.experiment("gate").start_run() as run:
        for accuracy in (0.8, 0.7, 0.9):
            run.log_model(clf, "m", input_example=X, metrics={"accuracy": accuracy})
    m = workspace.model("m")
    rules = {"requires": ["metrics.accuracy >= 0.75"], "better_than": "production"}

    first = gate.promote(m, 1, "production", **rules)
    assert first.passed and first.promoted and (first.previous, first.current) == (None, 1)
    assert "nothing to beat" in first.report.checks[-1].reason
    assert m.aliases() == {"production": 1}

    with pytest.raises(GateFailed, match=r"m v2 failed 2 of 2 check\(s\).*0\.7 is not above 0\.8 of production \(v1\)"):
        gate.promote(m, 2, "production", **rules)
    refused = gate.promote(m, 2, "production", check=False, **rules)
    assert not refused.passed and not refused.promoted and refused.current == 1
    assert m.aliases() == {"production": 1}
    assert [v for v, _ in m.alias_history("production")] == [1]  # a refused gate writes nothing

    dry = gate.promote(m, "v3", "production", dry_run=True, **rules)
    assert dry.passed and not dry.promoted and dry.current == 1
    assert m.aliases() == {"production": 1}

    done = gate.promote(m, "latest", "production", **rules)
    assert done.promoted and (done.previous, done.current) == (1, 3)
    again = gate.promote(m, 3, "production", **rules)
    assert again.passed and not again.promoted and again.current == 3
    assert again.to_dict()["promoted"] is False

    # the pure evaluation reads real ModelVersions the same way
    report = gate.evaluate(m.version(1), ["metrics.accuracy > 0.5"], m.alias("production"), alias="production")
    assert not report.passed
    assert report.failures[0].reason.startswith("0.8 is not above 0.9 of production (v3)")
