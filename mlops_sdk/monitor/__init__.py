"""Monitoring: data drift, prediction drift, performance and fairness, with alerts.

``import mlops_sdk`` does not load this package (it needs numpy, scipy and
scikit-learn); ``mlops_sdk.monitor`` loads it on first use.

>>> import numpy as np
>>> import mlops_sdk as mlops
>>> rng = np.random.default_rng(1)
>>> ref = {"age": rng.normal(40, 10, 3000)}
>>> cur = {"age": rng.normal(48, 10, 3000)}
>>> report = mlops.monitor.data_drift(ref, cur)
>>> report.drifted, [a.kind for a in report.alerts]
(['age'], ['drift', 'drift'])

:func:`monitor` runs every check that its arguments allow and delivers the
alerts (to ``sinks`` and to plugins implementing ``mlops_alert``); a
deployment's ``monitor()`` calls it with its inference log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlops_sdk.errors import InvalidValue
from mlops_sdk.monitor.alerts import KINDS, Alert, deliver
from mlops_sdk.monitor.drift import ColumnDrift, DriftReport, data_drift, prediction_drift
from mlops_sdk.monitor.fairness import FairnessReport, GroupMetrics, fairness
from mlops_sdk.monitor.performance import PerformanceReport, Window, performance
from mlops_sdk.monitor.report import MonitorReport
from mlops_sdk.monitor.thresholds import DEFAULT_THRESHOLDS, Thresholds

thresholds = DEFAULT_THRESHOLDS
"""The default :class:`Thresholds` (p < 0.05, PSI ≥ 0.1, normed Wasserstein ≥ 0.1, …)."""


def monitor(
    reference: Any,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    target: str | None = None,
    prediction: str | None = None,
    score: str | None = None,
    sensitive: str | None = None,
    timestamp: str | None = None,
    window: str = "1D",
    method: str = "auto",
    methods: Mapping[str, str] | None = None,
    thresholds: Thresholds | None = None,
    nan_policy: str = "raise",
    sinks: Sequence[str] = (),
    plugins: bool = True,
) -> MonitorReport:
    """Every check the arguments allow, in one report; alerts delivered to ``sinks`` and plugins.

    - feature drift over ``columns`` (default: the reference's columns except
      ``target``, ``prediction``, ``score``, ``sensitive`` and ``timestamp``);
    - prediction drift when ``prediction`` is given;
    - performance when ``target`` and ``prediction`` are given and the current
      data has the target column (labels arrived);
    - fairness when ``sensitive`` is given too.

    ``sinks``: ``"log"`` and/or ``"webhook:https://…"``; alerts also go to the
    ``mlops_alert`` hook of every plugin unless ``plugins=False``.

    >>> import numpy as np
    >>> x = np.linspace(0, 1, 3000)
    >>> monitor({"x": x}, {"x": x}, sinks=["log"]).alerts
    []
    """
    from mlops_sdk.monitor.alerts import parse_sink
    from mlops_sdk.monitor.drift import as_columns

    for s in sinks:
        parse_sink(s)  # fail before the work on a bad sink
    if nan_policy not in ("raise", "omit"):
        raise InvalidValue(f"nan_policy must be 'raise' or 'omit', not {nan_policy!r}")
    policy: Any = nan_policy
    th = thresholds or Thresholds()
    special = {c for c in (target, prediction, score, sensitive, timestamp) if c}
    if columns is None:
        columns = [c for c in as_columns(reference, "reference") if c not in special]
    drift = (
        data_drift(reference, current, columns=columns, categorical=categorical, method=method,
                   methods=methods, thresholds=th, nan_policy=policy)
        if columns
        else None
    )
    pred_drift = perf = fair = None
    cur_cols = as_columns(current, "current")
    if prediction is not None:
        ref_cols = as_columns(reference, "reference")
        for label, cols in (("reference", ref_cols), ("current", cur_cols)):
            if prediction not in cols:
                raise InvalidValue(f"the {label} data has no prediction column {prediction!r}")
        pred_drift = prediction_drift(ref_cols[prediction], cur_cols[prediction], thresholds=th,
                                      nan_policy=policy)
    if target is not None and prediction is not None and target in cur_cols:
        ref_for_perf = reference if target in as_columns(reference, "reference") else None
        perf = performance(current, target=target, prediction=prediction, reference=ref_for_perf,
                           score=score, timestamp=timestamp, window=window, thresholds=th)
        if sensitive is not None:
            fair = fairness(current, target=target, prediction=prediction, sensitive=sensitive, thresholds=th)
    elif sensitive is not None:
        raise InvalidValue("fairness needs target= and prediction= columns, with labels in the current data")
    report = MonitorReport(drift=drift, prediction_drift=pred_drift, performance=perf, fairness=fair)
    if sinks or plugins:
        deliver(report.alerts, sinks, plugins=plugins)
    return report


__all__ = [
    "DEFAULT_THRESHOLDS",
    "KINDS",
    "Alert",
    "ColumnDrift",
    "DriftReport",
    "FairnessReport",
    "GroupMetrics",
    "MonitorReport",
    "PerformanceReport",
    "Thresholds",
    "Window",
    "data_drift",
    "deliver",
    "fairness",
    "monitor",
    "performance",
    "prediction_drift",
    "thresholds",
]
