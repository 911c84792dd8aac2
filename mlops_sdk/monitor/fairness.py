"""Bias across a sensitive attribute: per-group metrics and the gaps between groups.

For a binary classifier and one sensitive column (``sex``, ``age_band``…):

- per group: rows, selection rate (share predicted positive), accuracy, true
  positive rate and false positive rate, from sklearn's ``confusion_matrix``;
- **demographic parity difference**: the largest minus the smallest selection rate;
- **equalized odds difference**: the larger of the TPR gap and the FPR gap
  between groups (fairlearn's definition; fairlearn computes both when it is
  installed, and the numbers are the same).

>>> rep = fairness({"y": [1, 0, 1, 0], "p": [1, 0, 0, 0], "g": ["a", "a", "b", "b"]},
...                target="y", prediction="p", sensitive="g")
>>> rep.demographic_parity_difference, rep.equalized_odds_difference
(0.5, 1.0)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from mlops_sdk.errors import InvalidValue
from mlops_sdk.monitor.alerts import Alert, deliver
from mlops_sdk.monitor.drift import as_columns
from mlops_sdk.monitor.thresholds import Thresholds

if TYPE_CHECKING:
    from numpy.typing import NDArray


@attrs.frozen
class GroupMetrics:
    """Metrics of one value of the sensitive attribute (a rate is ``None`` when its denominator is 0)."""

    group: str
    rows: int
    selection_rate: float
    accuracy: float
    tpr: float | None
    fpr: float | None


def group_metrics(group: str, target: NDArray[Any], prediction: NDArray[Any]) -> GroupMetrics:
    """Selection rate, accuracy, TPR and FPR of one group from its 2x2 confusion matrix (0/1 arrays)."""
    from sklearn.metrics import confusion_matrix

    tn, fp, fn, tp = (int(v) for v in confusion_matrix(target, prediction, labels=[0, 1]).ravel())
    n = tn + fp + fn + tp
    return GroupMetrics(
        group=group,
        rows=n,
        selection_rate=(tp + fp) / n,
        accuracy=(tp + tn) / n,
        tpr=tp / (tp + fn) if tp + fn else None,
        fpr=fp / (fp + tn) if fp + tn else None,
    )


def _gap(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return max(present) - min(present) if present else 0.0


@attrs.frozen
class FairnessReport:
    """Per-group metrics over ``sensitive`` and the two gap measures, with bias alerts."""

    sensitive: str
    groups: tuple[GroupMetrics, ...]
    demographic_parity_difference: float
    equalized_odds_difference: float
    thresholds: Thresholds = attrs.field(factory=Thresholds)

    @property
    def alerts(self) -> list[Alert]:
        out = []
        checks = (
            ("demographic_parity_difference", self.demographic_parity_difference, self.thresholds.demographic_parity),
            ("equalized_odds_difference", self.equalized_odds_difference, self.thresholds.equalized_odds),
        )
        for name, value, limit in checks:
            if value > limit:
                out.append(
                    Alert(
                        "bias",
                        f"{self.sensitive}:{name}",
                        f"{name.replace('_', ' ')} across {self.sensitive!r} is {value:.3f} (limit {limit:g})",
                        value,
                        limit,
                    )
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensitive": self.sensitive,
            "groups": [attrs.asdict(g) for g in self.groups],
            "demographic_parity_difference": self.demographic_parity_difference,
            "equalized_odds_difference": self.equalized_odds_difference,
            "alerts": [a.to_dict() for a in self.alerts],
        }

    def to_json(self, **kwargs: Any) -> str:
        from mlops_sdk.monitor.report import json_safe

        return json.dumps(json_safe(self.to_dict()), allow_nan=False, **kwargs)

    def to_html(self) -> str:
        from mlops_sdk.monitor.report import render_html

        return render_html(fairness=self)

    def deliver(self, sinks: Sequence[str] = (), *, plugins: bool = True) -> None:
        deliver(self.alerts, sinks, plugins=plugins)


def _binary(values: Any, name: str, pos_label: Any) -> NDArray[Any]:
    arr = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InvalidValue(f"column {name!r} has missing or infinite values")
    labels = set(np.unique(arr).tolist())
    if len(labels - {pos_label}) > 1:
        raise InvalidValue(
            f"fairness needs a binary classifier: column {name!r} holds {len(labels)} labels "
            f"(positive label {pos_label!r})"
        )
    out: NDArray[Any] = (arr == pos_label).astype(int)
    return out


def _fairlearn_differences(
    y: NDArray[Any], p: NDArray[Any], groups: NDArray[Any]
) -> tuple[float, float] | None:
    try:
        from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
    except ImportError:
        return None
    return (
        float(demographic_parity_difference(y, p, sensitive_features=groups)),
        float(equalized_odds_difference(y, p, sensitive_features=groups)),
    )


def fairness(
    data: Any,
    *,
    target: str,
    prediction: str,
    sensitive: str,
    pos_label: Any = 1,
    thresholds: Thresholds | None = None,
) -> FairnessReport:
    """Per-group metrics of a binary classifier over the values of ``sensitive``.

    Alerts of kind ``bias`` fire when the demographic parity difference or the
    equalized odds difference exceeds its threshold.
    """
    th = thresholds or Thresholds()
    cols = as_columns(data, "current")
    for role, name in (("target", target), ("prediction", prediction), ("sensitive", sensitive)):
        if name not in cols:
            raise InvalidValue(f"the data has no {role} column {name!r}")
    y = _binary(cols[target], target, pos_label)
    p = _binary(cols[prediction], prediction, pos_label)
    raw_groups = cols[sensitive]
    g_arr = np.asarray(raw_groups.to_numpy() if hasattr(raw_groups, "to_numpy") else raw_groups)
    if g_arr.dtype.kind == "O" and any(v is None or (isinstance(v, float) and v != v) for v in g_arr):
        raise InvalidValue(f"the sensitive column {sensitive!r} has missing values")
    g = g_arr.astype(str)
    groups = tuple(group_metrics(name, y[g == name], p[g == name]) for name in sorted(set(g.tolist())))
    fl = _fairlearn_differences(y, p, g)
    if fl is not None:
        dpd, eod = fl
    else:
        dpd = _gap([gm.selection_rate for gm in groups])
        eod = max(_gap([gm.tpr for gm in groups]), _gap([gm.fpr for gm in groups]))
    return FairnessReport(sensitive, groups, dpd, eod, th)


__all__ = ["FairnessReport", "GroupMetrics", "fairness", "group_metrics"]
