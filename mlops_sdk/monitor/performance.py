"""Model performance once labels arrive: overall, per time window, and against the reference.

Classifiers get accuracy, F1 (binary for 0/1 labels, macro-averaged
otherwise) and, when a score column is given, ROC AUC; regressors get RMSE
and MAE. All metrics come from :mod:`sklearn.metrics`.

>>> import numpy as np
>>> y = np.array([0, 1] * 50)
>>> rep = performance({"y": y, "p": y}, target="y", prediction="p",
...                   reference={"y": y, "p": y})
>>> rep.metrics["accuracy"], rep.alerts
(1.0, [])
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs
import numpy as np

from mlops_sdk.errors import InvalidValue
from mlops_sdk.monitor.alerts import Alert, deliver
from mlops_sdk.monitor.drift import as_columns
from mlops_sdk.monitor.thresholds import Thresholds

if TYPE_CHECKING:
    from numpy.typing import NDArray

Task = Literal["auto", "classification", "regression"]
HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "roc_auc": True, "rmse": False, "mae": False}
MAX_CLASSES = 20


def infer_task(target: NDArray[Any], prediction: NDArray[Any]) -> str:
    """``classification`` for labels (strings, booleans, integers with at most 20 values), else ``regression``."""
    for arr in (target, prediction):
        if arr.dtype.kind in "fc" and not np.all(np.mod(arr, 1) == 0):
            return "regression"
    if target.dtype.kind in "OUSb" or len(np.unique(target)) <= MAX_CLASSES:
        return "classification"
    return "regression"


def classification_metrics(
    target: NDArray[Any], prediction: NDArray[Any], score: NDArray[Any] | None = None
) -> dict[str, float | None]:
    """Accuracy, F1 and (with ``score``, the positive-class probability) ROC AUC.

    ROC AUC is ``None`` when only one class is present.
    """
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    labels = set(np.unique(target).tolist()) | set(np.unique(prediction).tolist())
    binary = labels <= {0, 1} or labels <= {False, True}
    out: dict[str, float | None] = {
        "accuracy": float(accuracy_score(target, prediction)),
        "f1": float(
            f1_score(target, prediction, average="binary" if binary else "macro", zero_division=0)
        ),
    }
    if score is not None:
        out["roc_auc"] = float(roc_auc_score(target, score)) if len(np.unique(target)) == 2 else None
    return out


def regression_metrics(target: NDArray[Any], prediction: NDArray[Any]) -> dict[str, float | None]:
    """RMSE and MAE."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    return {
        "rmse": math.sqrt(float(mean_squared_error(target, prediction))),
        "mae": float(mean_absolute_error(target, prediction)),
    }


def metrics_for(
    task: str, target: NDArray[Any], prediction: NDArray[Any], score: NDArray[Any] | None = None
) -> dict[str, float | None]:
    if task == "classification":
        return classification_metrics(target, prediction, score)
    return regression_metrics(target.astype(float), prediction.astype(float))


def degradation(metric: str, reference: float, current: float) -> float:
    """How much worse ``current`` is than ``reference``, relative (0.1 = 10 % worse; negative = better)."""
    if reference == 0:
        return 0.0 if current == reference else math.inf
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    return sign * (reference - current) / abs(reference)


@attrs.frozen
class Window:
    """Metrics over one time window (``start`` inclusive, ``end`` exclusive; ISO strings)."""

    start: str
    end: str
    rows: int
    metrics: Mapping[str, float | None]


@attrs.frozen
class PerformanceReport:
    """Current metrics, the reference's, per-window metrics and degradation alerts."""

    task: str
    metrics: Mapping[str, float | None]
    reference_metrics: Mapping[str, float | None] | None
    windows: tuple[Window, ...]
    performance_drop: float = 0.1
    rows: int = 0

    @property
    def alerts(self) -> list[Alert]:
        if not self.reference_metrics:
            return []
        out = []
        for name, cur in self.metrics.items():
            ref = self.reference_metrics.get(name)
            if cur is None or ref is None:
                continue
            drop = degradation(name, ref, cur)
            if drop > self.performance_drop:
                out.append(
                    Alert(
                        "performance",
                        name,
                        f"{name} degraded {drop:.1%} from the reference ({ref:.4g} → {cur:.4g}); "
                        f"limit {self.performance_drop:.0%}",
                        cur,
                        ref,
                    )
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "rows": self.rows,
            "metrics": dict(self.metrics),
            "reference_metrics": dict(self.reference_metrics) if self.reference_metrics else None,
            "performance_drop": self.performance_drop,
            "windows": [
                {"start": w.start, "end": w.end, "rows": w.rows, "metrics": dict(w.metrics)} for w in self.windows
            ],
            "alerts": [a.to_dict() for a in self.alerts],
        }

    def to_json(self, **kwargs: Any) -> str:
        from mlops_sdk.monitor.report import json_safe

        return json.dumps(json_safe(self.to_dict()), allow_nan=False, **kwargs)

    def to_html(self) -> str:
        from mlops_sdk.monitor.report import render_html

        return render_html(performance=self)

    def deliver(self, sinks: Sequence[str] = (), *, plugins: bool = True) -> None:
        deliver(self.alerts, sinks, plugins=plugins)


def _labels(columns: Mapping[str, Any], name: str, what: str, role: str) -> NDArray[Any]:
    if name not in columns:
        raise InvalidValue(f"the {what} data has no {role} column {name!r}")
    values = columns[name]
    arr = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InvalidValue(f"the {role} column {name!r} of the {what} data has missing or infinite values")
    if arr.dtype.kind == "O" and any(v is None or (isinstance(v, float) and v != v) for v in arr):
        raise InvalidValue(f"the {role} column {name!r} of the {what} data has missing values")
    return arr


def _window_edges(times: NDArray[Any], window: str) -> list[Any]:
    import pandas as pd

    try:
        freq = pd.tseries.frequencies.to_offset(window)
    except ValueError as exc:
        raise InvalidValue(f"window {window!r} is not a pandas frequency (try '1D', '6h', '1W')") from exc
    start = pd.Timestamp(times.min()).floor("s")
    edges = list(pd.date_range(start, pd.Timestamp(times.max()), freq=freq))
    if not edges or edges[0] > start:
        edges.insert(0, start)
    edges.append(edges[-1] + freq)
    return edges


def performance(
    current: Any,
    *,
    target: str,
    prediction: str,
    reference: Any = None,
    score: str | None = None,
    task: Task = "auto",
    timestamp: str | None = None,
    window: str = "1D",
    thresholds: Thresholds | None = None,
) -> PerformanceReport:
    """Metrics of ``prediction`` against ``target`` in ``current`` (and ``reference``, to compare).

    ``score``: a column with the positive-class probability (ROC AUC).
    ``timestamp`` + ``window`` (a pandas frequency such as ``"1D"``,
    ``"6h"``): metrics per time window too. An alert fires for each metric
    more than ``thresholds.performance_drop`` (relative) worse than the
    reference.
    """
    th = thresholds or Thresholds()
    cols = as_columns(current, "current")
    y, p = _labels(cols, target, "current", "target"), _labels(cols, prediction, "current", "prediction")
    s = _labels(cols, score, "current", "score").astype(float) if score else None
    if task == "auto":
        task = "classification" if infer_task(y, p) == "classification" else "regression"
    if task not in ("classification", "regression"):
        raise InvalidValue(f"task must be 'auto', 'classification' or 'regression', not {task!r}")
    if task == "regression" and (y.dtype.kind not in "iuf" or p.dtype.kind not in "iuf"):
        raise InvalidValue("a regression needs numeric target and prediction columns")
    metrics = metrics_for(task, y, p, s)
    ref_metrics = None
    if reference is not None:
        rcols = as_columns(reference, "reference")
        ry = _labels(rcols, target, "reference", "target")
        rp = _labels(rcols, prediction, "reference", "prediction")
        rs = _labels(rcols, score, "reference", "score").astype(float) if score else None
        ref_metrics = metrics_for(task, ry, rp, rs)
    windows: list[Window] = []
    if timestamp is not None:
        import pandas as pd

        if timestamp not in cols:
            raise InvalidValue(f"the current data has no timestamp column {timestamp!r}")
        try:
            times = pd.to_datetime(np.asarray(cols[timestamp]))
        except (ValueError, TypeError) as exc:
            raise InvalidValue(f"the timestamp column {timestamp!r} does not hold dates: {exc}") from exc
        tvals = np.asarray(times.values)
        edges = _window_edges(tvals, window)
        for lo, hi in itertools.pairwise(edges):
            mask = (tvals >= np.datetime64(lo)) & (tvals < np.datetime64(hi))
            if mask.any():
                windows.append(
                    Window(
                        lo.isoformat(), hi.isoformat(), int(mask.sum()),
                        metrics_for(task, y[mask], p[mask], s[mask] if s is not None else None),
                    )
                )
    return PerformanceReport(task, metrics, ref_metrics, tuple(windows), th.performance_drop, len(y))


__all__ = ["PerformanceReport", "Window", "classification_metrics", "performance", "regression_metrics"]
