"""Performance and fairness monitoring on real models and on a small hand-checked table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlops_sdk.errors import InvalidValue
from mlops_sdk.monitor import fairness, monitor, performance


@pytest.fixture(scope="module")
def scored() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Breast cancer: a classifier trained on half, scored on the other half (reference) and on a
    corrupted copy of it (current: noise drowns the features, so accuracy drops)."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(X))
    train, test = idx[:285], idx[285:]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X.iloc[train], y.iloc[train])

    def frame(features: pd.DataFrame) -> pd.DataFrame:
        out = features.copy()
        out["label"] = y.iloc[test].to_numpy()
        out["pred"] = clf.predict(features)
        out["proba"] = clf.predict_proba(features)[:, 1]
        return out.reset_index(drop=True)

    ref = frame(X.iloc[test])
    noisy = X.iloc[test] + rng.normal(0, 1, X.iloc[test].shape) * X.iloc[test].std().to_numpy() * 2.5
    return ref, frame(noisy)


def test_classifier_metrics_and_degradation_alert(scored: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, cur = scored
    same = performance(ref, target="label", prediction="pred", score="proba", reference=ref)
    assert same.task == "classification" and same.alerts == []
    assert set(same.metrics) == {"accuracy", "f1", "roc_auc"} and same.metrics["accuracy"] > 0.9
    worse = performance(cur, target="label", prediction="pred", score="proba", reference=ref)
    assert worse.metrics["accuracy"] < same.metrics["accuracy"] * 0.9
    assert "accuracy" in {a.subject for a in worse.alerts}
    assert {a.kind for a in worse.alerts} == {"performance"}


def test_regressor_metrics_match_sklearn() -> None:
    X, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(X[:300], y[:300])
    ref = {"y": y[300:], "p": model.predict(X[300:])}
    rep = performance(ref, target="y", prediction="p", reference=ref)
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    assert rep.task == "regression"
    assert rep.metrics["rmse"] == pytest.approx(mean_squared_error(ref["y"], ref["p"]) ** 0.5)
    assert rep.metrics["mae"] == pytest.approx(mean_absolute_error(ref["y"], ref["p"]))
    worse = performance({"y": y[300:], "p": ref["p"] + 40}, target="y", prediction="p", reference=ref)
    assert {a.subject for a in worse.alerts} == {"rmse", "mae"}


def test_metrics_over_time_windows(scored: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, cur = scored
    both = pd.concat([ref, cur], ignore_index=True)
    both["ts"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(len(both)) * 3600, unit="s")
    rep = performance(both, target="label", prediction="pred", timestamp="ts", window="1D", reference=ref)
    assert sum(w.rows for w in rep.windows) == len(both)
    assert rep.windows[0].metrics["accuracy"] > rep.windows[-1].metrics["accuracy"]
    page = rep.to_html()
    assert "<polyline" in page
    with pytest.raises(InvalidValue, match="frequency"):
        performance(both, target="label", prediction="pred", timestamp="ts", window="fortnightly")


def test_fairness_matches_hand_computed_values() -> None:
    # group a: y 1 1 0 0, p 1 0 1 0 -> selection 2/4, TPR 1/2, FPR 1/2, accuracy 2/4
    # group b: y 1 1 0 0 0 0, p 1 1 1 0 0 0 -> selection 3/6, TPR 2/2, FPR 1/4, accuracy 5/6
    table = pd.DataFrame(
        {
            "y": [1, 1, 0, 0, 1, 1, 0, 0, 0, 0],
            "p": [1, 0, 1, 0, 1, 1, 1, 0, 0, 0],
            "g": ["a"] * 4 + ["b"] * 6,
        }
    )
    rep = fairness(table, target="y", prediction="p", sensitive="g")
    a, b = rep.groups
    assert (a.group, a.rows, a.selection_rate, a.tpr, a.fpr, a.accuracy) == ("a", 4, 0.5, 0.5, 0.5, 0.5)
    assert (b.group, b.rows, b.selection_rate, b.tpr, b.fpr) == ("b", 6, 0.5, 1.0, 0.25)
    assert b.accuracy == pytest.approx(5 / 6)
    assert rep.demographic_parity_difference == pytest.approx(0.0)
    assert rep.equalized_odds_difference == pytest.approx(0.5)  # max(TPR gap 0.5, FPR gap 0.25)
    assert [x.subject for x in rep.alerts] == ["g:equalized_odds_difference"]
    assert json.loads(rep.to_json())["groups"][0]["group"] == "a"


def test_fairness_on_real_data_with_a_biased_model(scored: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, _ = scored
    data = ref.copy()
    data["band"] = np.where(data["mean radius"] > data["mean radius"].median(), "large", "small")
    fair = fairness(data, target="label", prediction="pred", sensitive="band")
    assert fair.demographic_parity_difference > 0.5  # large tumours are mostly malignant (label 0)
    assert {a.kind for a in fair.alerts} == {"bias"}


def test_fairness_bad_input() -> None:
    with pytest.raises(InvalidValue, match="binary"):
        fairness({"y": [0, 1, 2], "p": [0, 1, 2], "g": ["a", "b", "a"]}, target="y", prediction="p", sensitive="g")
    with pytest.raises(InvalidValue, match="no sensitive column"):
        fairness({"y": [0, 1], "p": [0, 1]}, target="y", prediction="p", sensitive="g")
    with pytest.raises(InvalidValue, match="missing"):
        fairness({"y": [0, 1], "p": [0, 1], "g": ["a", None]}, target="y", prediction="p", sensitive="g")


def test_performance_bad_input() -> None:
    with pytest.raises(InvalidValue, match="no target column"):
        performance({"p": [1, 0]}, target="y", prediction="p")
    with pytest.raises(InvalidValue, match="missing"):
        performance({"y": [1.0, np.nan], "p": [1.0, 0.0]}, target="y", prediction="p")


def test_monitor_runs_every_check(scored: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, cur = scored
    ref = ref.assign(band=np.where(ref["mean radius"] > 14, "large", "small"))
    cur = cur.assign(band=np.where(ref["mean radius"] > 14, "large", "small"))
    report = monitor(ref, cur, target="label", prediction="pred", score="proba", sensitive="band", plugins=False)
    assert report.drift is not None and "label" not in [c.column for c in report.drift.columns]
    assert report.prediction_drift is not None and report.performance is not None and report.fairness is not None
    kinds = {a.kind for a in report.alerts}
    assert {"drift", "performance"} <= kinds
    data = json.loads(report.to_json())
    assert set(data) == {"drift", "prediction_drift", "performance", "fairness", "alerts"}
    page = report.to_html()
    assert "Fairness across band" in page and "Model performance" in page
