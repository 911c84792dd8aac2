"""The limits that turn monitoring numbers into alerts.

>>> from mlops_sdk.monitor import Thresholds
>>> strict = Thresholds(p_value=0.01, wasserstein=0.2)
>>> strict.psi
0.1
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from mlops_sdk.errors import InvalidValue


def _unit(_instance: Any, attribute: Any, value: float) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= 1:
        raise InvalidValue(f"threshold {attribute.name} must be a number in (0, 1], got {value!r}")


def _positive(_instance: Any, attribute: Any, value: float) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidValue(f"threshold {attribute.name} must be a positive number, got {value!r}")


@attrs.frozen
class Thresholds:
    """Every limit monitoring compares against (defaults follow Evidently where it has one).

    Drift: ``p_value`` (KS and chi-square drift below it), ``psi`` and
    ``wasserstein`` (drift at or above), ``small_sample`` (reference rows up to
    which ``method="auto"`` uses the p-value tests), ``drift_share`` (share of
    drifted columns that makes the dataset drifted).

    Performance: ``performance_drop``, the relative degradation from the
    reference that alerts (0.1: accuracy 0.90 → below 0.81, RMSE 2.0 → above 2.2).

    Fairness: ``demographic_parity`` and ``equalized_odds``, the largest
    difference between groups that does not alert.
    """

    p_value: float = attrs.field(default=0.05, validator=_unit)
    psi: float = attrs.field(default=0.1, validator=_positive)
    wasserstein: float = attrs.field(default=0.1, validator=_positive)
    small_sample: int = 1000
    drift_share: float = attrs.field(default=0.5, validator=_unit)
    performance_drop: float = attrs.field(default=0.1, validator=_unit)
    demographic_parity: float = attrs.field(default=0.1, validator=_unit)
    equalized_odds: float = attrs.field(default=0.1, validator=_unit)


DEFAULT_THRESHOLDS = Thresholds()

__all__ = ["DEFAULT_THRESHOLDS", "Thresholds"]
