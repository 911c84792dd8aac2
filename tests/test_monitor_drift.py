"""Data drift on real data (scikit-learn's breast cancer and diabetes sets) with planted shifts."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer, load_diabetes

import mlops_sdk as mlops
from mlops_sdk.errors import AlertDeliveryError, InvalidValue, PluginError
from mlops_sdk.hookspecs import hookimpl
from mlops_sdk.monitor import Alert, Thresholds, data_drift, deliver, monitor, prediction_drift
from mlops_sdk.monitor.drift import chi2_pvalue, psi, psi_categorical, wasserstein_norm
from mlops_sdk.plugins import plugin_registered

# At p < 0.05 about 1 column in 20 of two random halves "drifts" by chance; these fixed
# splits of the 569 rows have no such false positive, so any verdict is the planted one.
CLEAN_SPLITS = (2, 4, 5)


def _halves(df: pd.DataFrame, seed: int = CLEAN_SPLITS[0]) -> tuple[pd.DataFrame, pd.DataFrame]:
    shuffled = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    mid = len(shuffled) // 2
    return shuffled.iloc[:mid].reset_index(drop=True), shuffled.iloc[mid:].reset_index(drop=True)


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).data


def test_planted_shift_is_detected_per_column(cancer: pd.DataFrame) -> None:
    ref, cur = _halves(cancer)
    cur = cur.copy()
    shifted = ["mean radius", "worst texture"]
    for col in shifted:
        cur[col] = cur[col] + 0.8 * ref[col].std()
    report = mlops.monitor.data_drift(ref, cur)
    assert sorted(report.drifted) == sorted(shifted)
    for col in shifted:
        assert report[col].drifted and report[col].method == "ks"  # 284 rows: the small-sample test
    drift_alerts = [a for a in report.alerts if a.kind == "drift"]
    assert {a.subject for a in drift_alerts} == set(shifted)
    assert not report.dataset_drift


def test_unshifted_sample_gives_no_alerts(cancer: pd.DataFrame) -> None:
    for seed in CLEAN_SPLITS:
        ref, cur = _halves(cancer, seed=seed)
        report = data_drift(ref, cur)
        assert report.drifted == []
        assert report.alerts == []


def test_large_sample_uses_distances_and_finds_the_shift() -> None:
    diabetes = load_diabetes(as_frame=True).frame
    rng = np.random.default_rng(0)
    big = diabetes.sample(n=6000, replace=True, random_state=0).reset_index(drop=True)
    big = big + rng.normal(0, 0.001, big.shape)  # bootstrap plus a little jitter: continuous again
    ref, cur = big.iloc[:3000].reset_index(drop=True), big.iloc[3000:].reset_index(drop=True)
    cur["bmi"] = cur["bmi"] * 1.6
    report = data_drift(ref, cur)
    assert report.drifted == ["bmi"]
    assert report["bmi"].method == "wasserstein"
    assert report["age"].method == "wasserstein" and not report["age"].drifted


def test_categorical_drift() -> None:
    rng = np.random.default_rng(3)
    cats = ["red", "green", "blue"]
    ref = pd.DataFrame({"colour": rng.choice(cats, 800, p=[0.5, 0.3, 0.2]), "size": rng.choice(["S", "M"], 800)})
    cur = pd.DataFrame({"colour": rng.choice(cats, 800, p=[0.2, 0.3, 0.5]), "size": rng.choice(["S", "M"], 800)})
    report = data_drift(ref, cur)
    assert report.drifted == ["colour"]
    assert report["colour"].kind == "categorical" and report["colour"].method == "chi2"
    big = data_drift(pd.concat([ref] * 3), pd.concat([cur] * 3))
    assert big["colour"].method == "psi" and big.drifted == ["colour"]


def test_new_category_in_current_counts_as_drift() -> None:
    ref = {"c": np.array(["a", "b"] * 300)}
    cur = {"c": np.array(["a", "b", "zzz"] * 200)}
    assert data_drift(ref, cur).drifted == ["c"]


def test_few_distinct_numbers_are_tested_as_categories() -> None:
    ref = {"n": np.array([0, 1, 2] * 200)}
    cur = {"n": np.array([0, 1, 2] * 200)}
    assert data_drift(ref, cur)["n"].kind == "categorical"


def test_method_and_thresholds_are_configurable(cancer: pd.DataFrame) -> None:
    ref, cur = _halves(cancer)
    report = data_drift(ref, cur, method="psi", methods={"mean area": "wasserstein"})
    assert {c.method for c in report.columns if c.column != "mean area"} == {"psi"}
    assert report["mean area"].method == "wasserstein"
    everything = data_drift(ref, cur, method="wasserstein", thresholds=Thresholds(wasserstein=1e-9))
    assert len(everything.drifted) == len(everything.columns) and everything.dataset_drift
    with pytest.raises(InvalidValue):
        data_drift(ref, cur, method="nope")
    with pytest.raises(InvalidValue):
        data_drift({"c": ["a", "b"] * 10}, {"c": ["a", "b"] * 10}, methods={"c": "ks"})
    with pytest.raises(InvalidValue):
        Thresholds(p_value=2.0)


def test_prediction_drift() -> None:
    assert prediction_drift([0, 1] * 600, [0, 1] * 600).drifted == []
    assert prediction_drift([0, 1] * 600, [1, 1, 1, 0] * 300).drifted == ["prediction"]
    rng = np.random.default_rng(0)
    scores = prediction_drift(rng.normal(0, 1, 500), rng.normal(1, 1, 500), categorical=False)
    assert scores.drifted == ["prediction"] and scores.columns[0].method == "ks"


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ref", "cur", "match"),
    [
        (pd.DataFrame({"x": []}), pd.DataFrame({"x": [1.0]}), "empty"),
        (pd.DataFrame({"x": [1.0, 2.0]}), pd.DataFrame({"x": []}), "empty"),
        (pd.DataFrame({"x": [1.0, 2.0]}), pd.DataFrame({"y": [1.0, 2.0]}), "no column"),
        (pd.DataFrame({"x": [1.0, np.nan]}), pd.DataFrame({"x": [1.0, 2.0]}), "missing"),
        (pd.DataFrame({"x": np.arange(10.0)}), pd.DataFrame({"x": [1.0, np.inf]}), "infinite"),
        (pd.DataFrame({"x": np.arange(10.0)}), pd.DataFrame({"x": ["1", "two", "3"]}), "non-numeric"),
        (pd.DataFrame({"c": ["a", None]}), pd.DataFrame({"c": ["a", "b"]}), "missing"),
        ({}, {"x": [1.0]}, "no columns"),
        ({"x": [1.0, 2.0], "y": [1.0]}, {"x": [1.0]}, "different lengths"),
    ],
)
def test_bad_input_is_a_typed_error(ref: Any, cur: Any, match: str) -> None:
    with pytest.raises(InvalidValue, match=match):
        data_drift(ref, cur)


def test_nan_policy_omit_drops_missing_values() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 400)
    cur = x.copy()
    cur[::10] = np.nan
    report = data_drift({"x": x}, {"x": cur}, nan_policy="omit")
    assert report["x"].n_current == 360 and report.drifted == []
    with pytest.raises(InvalidValue, match="no usable"):
        data_drift({"x": x}, {"x": np.full(5, np.nan)}, nan_policy="omit")


def test_numeric_strings_in_a_numeric_column_are_read_as_numbers() -> None:
    ref = pd.DataFrame({"x": np.arange(100.0)})
    cur = pd.DataFrame({"x": [str(v) for v in np.arange(100.0)]})
    assert data_drift(ref, cur).drifted == []


# -- invariants (hypothesis) -------------------------------------------------------------
floats = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=20, max_size=200)


@settings(max_examples=50, deadline=None)
@given(floats)
def test_no_drift_when_current_equals_reference(values: list[float]) -> None:
    arr = np.array(values)
    report = data_drift({"x": arr}, {"x": arr.copy()})
    assert report.drifted == [] and report.alerts == []
    assert psi(arr, arr) == pytest.approx(0.0, abs=1e-12)
    assert wasserstein_norm(arr, arr) == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(floats, floats)
def test_psi_is_never_negative(a: list[float], b: list[float]) -> None:
    value = psi(np.array(a), np.array(b))
    assert value >= 0 and math.isfinite(value)


cats = st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=5, max_size=100)


@settings(max_examples=50, deadline=None)
@given(cats, cats)
def test_categorical_psi_and_chi2_are_symmetric(a: list[str], b: list[str]) -> None:
    x, y = np.array(a), np.array(b)
    assert psi_categorical(x, y) == pytest.approx(psi_categorical(y, x))
    assert psi_categorical(x, y) >= 0
    assert chi2_pvalue(x, y) == pytest.approx(chi2_pvalue(y, x))
    assert 0 <= chi2_pvalue(x, y) <= 1


@settings(max_examples=30, deadline=None)
@given(floats, floats)
def test_raw_wasserstein_is_symmetric(a: list[float], b: list[float]) -> None:
    from scipy.stats import wasserstein_distance

    x, y = np.array(a), np.array(b)
    assert wasserstein_distance(x, y) == pytest.approx(wasserstein_distance(y, x))


# -- reports -----------------------------------------------------------------------------
def test_json_and_html_are_self_contained_and_escaped(cancer: pd.DataFrame) -> None:
    ref, cur = _halves(cancer)
    ref = ref.rename(columns={"mean radius": "<script>alert(1)</script>"})
    cur = cur.rename(columns={"mean radius": "<script>alert(1)</script>"})
    cur["<script>alert(1)</script>"] += 5
    ref["tag"] = np.where(ref["mean area"] > 600, "big & <b>", "small")
    cur["tag"] = np.where(cur["mean area"] > 600, "big & <b>", "small")
    report = data_drift(ref, cur)
    data = json.loads(report.to_json())
    assert data["drifted"] == ["<script>alert(1)</script>"]
    page = report.to_html()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "big &amp; &lt;b&gt;" in page
    assert page.count("<svg") == len(report.columns)
    assert not re.search(r"(src|href)\s*=|url\(|@import|https?://", page), "external reference in HTML"


# -- alerts delivery ---------------------------------------------------------------------
class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"ctype": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(500 if self.path == "/fail" else 204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Any:
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Hook.received
    finally:
        server.shutdown()
        server.server_close()


def _shifted() -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(5)
    return {"age": rng.normal(40, 10, 2000)}, {"age": rng.normal(50, 10, 2000)}


def test_webhook_and_log_sinks(webhook: Any, caplog: pytest.LogCaptureFixture) -> None:
    url, received = webhook
    ref, cur = _shifted()
    with caplog.at_level(logging.WARNING, logger="mlops_sdk.monitor"):
        report = monitor(ref, cur, sinks=["log", f"webhook:{url}/hook"], plugins=False)
    assert [a.subject for a in report.alerts] == ["age", "dataset"]
    assert [r["body"]["subject"] for r in received] == ["age", "dataset"]
    assert received[0]["ctype"] == "application/json" and received[0]["body"]["kind"] == "drift"
    assert any("age" in r.getMessage() for r in caplog.records)


def test_webhook_failure_is_a_typed_error_after_other_sinks(webhook: Any, caplog: pytest.LogCaptureFixture) -> None:
    url, _ = webhook
    alert = Alert("drift", "x", "x drifted", 0.5, 0.1)
    with caplog.at_level(logging.WARNING, logger="mlops_sdk.monitor"), pytest.raises(AlertDeliveryError, match="500"):
        deliver([alert], [f"webhook:{url}/fail", "log"], plugins=False)
    assert any("x drifted" in r.getMessage() for r in caplog.records)
    with pytest.raises(AlertDeliveryError):
        deliver([alert], ["webhook:http://127.0.0.1:9/"], plugins=False, timeout=2)


@pytest.mark.parametrize("sink", ["email", "webhook:file:///etc/passwd", "webhook:"])
def test_bad_sink_is_rejected_before_any_work(sink: str) -> None:
    with pytest.raises(InvalidValue):
        monitor({"x": [1.0, 2.0]}, {"x": [1.0, 2.0]}, sinks=[sink])


def test_alert_hook_receives_every_alert_and_plugin_errors_are_named() -> None:
    got: list[Alert] = []

    class Sink:
        @hookimpl
        def mlops_alert(self, alert: Alert) -> None:
            got.append(alert)

    class Broken:
        @hookimpl
        def mlops_alert(self, alert: Alert) -> None:
            raise RuntimeError("pager down")

    ref, cur = _shifted()
    with plugin_registered(Sink(), "sink"):
        report = monitor(ref, cur)
        assert got == report.alerts
        monitor(ref, ref)
        assert len(got) == 2  # the unshifted check delivered nothing
    with plugin_registered(Broken(), "broken"), pytest.raises(PluginError, match="broken"):
        monitor(ref, cur)


def test_alert_kind_is_checked() -> None:
    with pytest.raises(InvalidValue):
        Alert("weather", "x", "rain")
