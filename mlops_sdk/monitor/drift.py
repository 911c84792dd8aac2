"""Data drift: does the current data still look like the reference data?

Pure functions over plain arrays (:func:`psi`, :func:`wasserstein_norm`,
:func:`ks_pvalue`, :func:`chi2_pvalue`, :func:`column_drift`) do the
statistics with scipy; :func:`data_drift` adds the edges: it takes two tables
(pandas DataFrames, mappings of column name to values, or 2-D arrays), checks
them, and returns a :class:`DriftReport`.

Every column gets every statistic of its kind; one of them (the *method*)
decides whether the column drifted. With ``method="auto"`` the choice follows
Evidently's defaults:

============  ==========================  ==================================
column        reference rows ≤ 1000        reference rows > 1000
============  ==========================  ==================================
numeric       Kolmogorov-Smirnov p < 0.05  Wasserstein / std(reference) ≥ 0.1
categorical   chi-square p < 0.05          PSI ≥ 0.1
============  ==========================  ==================================

A numeric column with at most 5 distinct reference values is tested as
categorical (as Evidently does). The dataset drifted when at least half of the
columns did (``Thresholds.drift_share``).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = {"x": rng.normal(0, 1, 5000), "y": rng.normal(0, 1, 5000)}
>>> cur = {"x": rng.normal(0.5, 1, 5000), "y": rng.normal(0, 1, 5000)}
>>> data_drift(ref, cur).drifted
['x']
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs
import numpy as np

from mlops_sdk.errors import InvalidValue
from mlops_sdk.monitor.alerts import Alert, deliver
from mlops_sdk.monitor.thresholds import Thresholds

if TYPE_CHECKING:
    from numpy.typing import NDArray

NUMERIC_METHODS = ("ks", "psi", "wasserstein")
CATEGORICAL_METHODS = ("chi2", "psi")
METHODS = ("auto", "ks", "psi", "wasserstein", "chi2")
P_VALUE_METHODS = ("ks", "chi2")
FEW_VALUES = 5  # numeric columns with at most this many distinct values are tested as categories
PSI_BINS = 10
PLOT_BINS = 20
PLOT_CATEGORIES = 20
EPS = 1e-4  # smoothing of empty bins in PSI

Kind = Literal["numeric", "categorical"]
NanPolicy = Literal["raise", "omit"]


# --------------------------------------------------------------------------- statistics
def ks_pvalue(reference: NDArray[Any], current: NDArray[Any]) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (scipy); small means different distributions."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference, current).pvalue)


def wasserstein_norm(reference: NDArray[Any], current: NDArray[Any]) -> float:
    """Wasserstein (earth mover's) distance divided by the reference's standard deviation.

    The standard deviation is floored at 0.001, as in Evidently, so a constant
    reference column does not divide by zero.
    """
    from scipy.stats import wasserstein_distance

    norm = max(float(np.std(reference)), 0.001)
    return float(wasserstein_distance(reference, current)) / norm


def _psi_from_counts(ref_counts: NDArray[Any], cur_counts: NDArray[Any]) -> float:
    ref_p = np.clip(ref_counts / max(ref_counts.sum(), 1), EPS, None)
    cur_p = np.clip(cur_counts / max(cur_counts.sum(), 1), EPS, None)
    return float(np.sum((cur_p - ref_p) * np.log(cur_p / ref_p)))


def quantile_edges(reference: NDArray[Any], bins: int = PSI_BINS) -> NDArray[Any]:
    """Inner bin edges at the reference's quantiles (duplicates dropped)."""
    qs = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def psi(reference: NDArray[Any], current: NDArray[Any], bins: int = PSI_BINS) -> float:
    """Population stability index of a numeric column, over quantile bins of the reference.

    ``sum((cur% - ref%) * ln(cur% / ref%))``; 0 for identical distributions,
    never negative; empty bins are floored at 0.0001.
    """
    edges = quantile_edges(reference, bins)
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    return _psi_from_counts(ref_counts, cur_counts)


def category_counts(
    reference: NDArray[Any], current: NDArray[Any]
) -> tuple[list[str], NDArray[Any], NDArray[Any]]:
    """Categories seen on either side (sorted) and their counts in reference and current."""
    ref_cats, ref_n = np.unique(reference, return_counts=True)
    cur_cats, cur_n = np.unique(current, return_counts=True)
    cats = sorted(set(ref_cats.tolist()) | set(cur_cats.tolist()))
    index = {c: i for i, c in enumerate(cats)}
    ref_counts = np.zeros(len(cats), dtype=np.int64)
    cur_counts = np.zeros(len(cats), dtype=np.int64)
    ref_counts[[index[c] for c in ref_cats.tolist()]] = ref_n
    cur_counts[[index[c] for c in cur_cats.tolist()]] = cur_n
    return cats, ref_counts, cur_counts


def psi_categorical(reference: NDArray[Any], current: NDArray[Any]) -> float:
    """Population stability index over the categories of both sides (symmetric)."""
    _cats, ref_counts, cur_counts = category_counts(reference, current)
    return _psi_from_counts(ref_counts, cur_counts)


def chi2_pvalue(reference: NDArray[Any], current: NDArray[Any]) -> float:
    """Chi-square test of homogeneity (scipy ``chi2_contingency``) of the category counts.

    1.0 when both sides hold a single, identical category.
    """
    from scipy.stats import chi2_contingency

    _cats, ref_counts, cur_counts = category_counts(reference, current)
    if len(ref_counts) < 2:
        return 1.0
    return float(chi2_contingency(np.vstack([ref_counts, cur_counts])).pvalue)


# --------------------------------------------------------------------------- one column
@attrs.frozen
class ColumnDrift:
    """The verdict on one column.

    ``method`` decided ``drifted`` by comparing ``score`` with ``threshold``
    (p-value methods drift below it, distances at or above it); ``stats``
    holds every statistic computed for the column; ``histogram`` is what the
    HTML report plots (shares of rows per bin or category).
    """

    column: str
    kind: str
    method: str
    score: float
    threshold: float
    drifted: bool
    stats: Mapping[str, float]
    n_reference: int
    n_current: int
    histogram: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "method": self.method,
            "score": self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "stats": dict(self.stats),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "histogram": dict(self.histogram),
        }

    def message(self) -> str:
        rel = "<" if self.method in P_VALUE_METHODS else "≥"
        what = f"{self.method} p-value" if self.method in P_VALUE_METHODS else self.method
        return f"column {self.column!r} drifted: {what} {self.score:.4g} {rel} {self.threshold:g}"


def choose_method(kind: str, n_reference: int, thresholds: Thresholds) -> str:
    """The deciding method under ``method="auto"`` (see the module docstring)."""
    small = n_reference <= thresholds.small_sample
    if kind == "numeric":
        return "ks" if small else "wasserstein"
    return "chi2" if small else "psi"


def _threshold(method: str, thresholds: Thresholds) -> float:
    return {
        "ks": thresholds.p_value,
        "chi2": thresholds.p_value,
        "psi": thresholds.psi,
        "wasserstein": thresholds.wasserstein,
    }[method]


def _numeric_histogram(ref: NDArray[Any], cur: NDArray[Any]) -> dict[str, Any]:
    lo = float(min(ref.min(), cur.min()))
    hi = float(max(ref.max(), cur.max()))
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, PLOT_BINS + 1)
    r, _ = np.histogram(ref, bins=edges)
    c, _ = np.histogram(cur, bins=edges)
    return {
        "edges": [float(e) for e in edges],
        "reference": (r / len(ref)).tolist(),
        "current": (c / len(cur)).tolist(),
    }


def _categorical_histogram(cats: list[str], r: NDArray[Any], c: NDArray[Any]) -> dict[str, Any]:
    rs, cs = r / max(r.sum(), 1), c / max(c.sum(), 1)
    order = np.argsort(-(rs + cs), kind="stable")
    top = order[:PLOT_CATEGORIES]
    labels = [str(cats[i]) for i in top]
    ref_share, cur_share = rs[top].tolist(), cs[top].tolist()
    if len(order) > PLOT_CATEGORIES:
        rest = order[PLOT_CATEGORIES:]
        labels.append("(other)")
        ref_share.append(float(rs[rest].sum()))
        cur_share.append(float(cs[rest].sum()))
    return {"categories": labels, "reference": ref_share, "current": cur_share}


def column_drift(
    column: str,
    reference: NDArray[Any],
    current: NDArray[Any],
    kind: Kind,
    *,
    method: str = "auto",
    thresholds: Thresholds | None = None,
    all_stats: bool = False,
) -> ColumnDrift:
    """The statistics of ``kind`` for one column, and the verdict of ``method``.

    Numeric columns get PSI, normed Wasserstein and (on samples up to
    ``thresholds.small_sample`` rows, when it decides, or with ``all_stats``)
    the KS p-value; categorical ones the chi-square p-value and PSI.

    ``reference`` and ``current`` are clean 1-D arrays: floats for numeric
    columns, strings for categorical ones, no missing values, not empty.
    """
    th = thresholds or Thresholds()
    if method == "auto":
        method = choose_method(kind, len(reference), th)
    allowed = NUMERIC_METHODS if kind == "numeric" else CATEGORICAL_METHODS
    if method not in allowed:
        raise InvalidValue(
            f"method {method!r} does not apply to the {kind} column {column!r}; use one of {', '.join(allowed)}"
        )
    stats: dict[str, float]
    if kind == "numeric":
        stats = {}
        # On big samples a KS p-value is ~0 for any shift at all (why "auto" switches to a
        # distance): it is computed there only when it decides, or when all_stats=True.
        if all_stats or method == "ks" or len(reference) <= th.small_sample:
            stats["ks_pvalue"] = ks_pvalue(reference, current)
        stats["psi"] = psi(reference, current)
        stats["wasserstein"] = wasserstein_norm(reference, current)
        histogram = _numeric_histogram(reference, current)
    else:
        cats, r, c = category_counts(reference, current)
        if len(cats) < 2:
            chi2_p = 1.0
        else:
            from scipy.stats import chi2_contingency

            chi2_p = float(chi2_contingency(np.vstack([r, c])).pvalue)
        stats = {"chi2_pvalue": chi2_p, "psi": _psi_from_counts(r, c)}
        histogram = _categorical_histogram(cats, r, c)
    key = {"ks": "ks_pvalue", "chi2": "chi2_pvalue"}.get(method, method)
    score = stats[key]
    threshold = _threshold(method, th)
    drifted = score < threshold if method in P_VALUE_METHODS else score >= threshold
    return ColumnDrift(
        column=column,
        kind=kind,
        method=method,
        score=score,
        threshold=threshold,
        drifted=bool(drifted),
        stats=stats,
        n_reference=len(reference),
        n_current=len(current),
        histogram=histogram,
    )


# --------------------------------------------------------------------------- the report
@attrs.frozen
class DriftReport:
    """Per-column drift verdicts and the dataset-level one.

    ``drifted`` lists the drifted column names; ``alerts`` has one
    ``drift`` alert per drifted column plus one for the dataset when the share
    of drifted columns reaches ``drift_share``.
    """

    columns: tuple[ColumnDrift, ...]
    drift_share: float = 0.5
    title: str = "Data drift"

    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.share_drifted >= self.drift_share

    def __getitem__(self, column: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == column:
                return c
        raise KeyError(column)

    @property
    def alerts(self) -> list[Alert]:
        out = [Alert("drift", c.column, c.message(), c.score, c.threshold) for c in self.columns if c.drifted]
        if self.dataset_drift:
            out.append(
                Alert(
                    "drift",
                    "dataset",
                    f"{len(self.drifted)} of {len(self.columns)} columns drifted "
                    f"({self.share_drifted:.0%} ≥ {self.drift_share:.0%})",
                    self.share_drifted,
                    self.drift_share,
                )
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "dataset_drift": self.dataset_drift,
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "drifted": self.drifted,
            "columns": [c.to_dict() for c in self.columns],
            "alerts": [a.to_dict() for a in self.alerts],
        }

    def to_json(self, **kwargs: Any) -> str:
        from mlops_sdk.monitor.report import json_safe

        return json.dumps(json_safe(self.to_dict()), allow_nan=False, **kwargs)

    def to_html(self) -> str:
        from mlops_sdk.monitor.report import render_html

        return render_html(drift=self)

    def deliver(self, sinks: Sequence[str] = (), *, plugins: bool = True) -> None:
        """Send :attr:`alerts` to ``sinks`` and the ``mlops_alert`` hook (see :func:`~mlops_sdk.monitor.alerts.deliver`)."""
        deliver(self.alerts, sinks, plugins=plugins)


# --------------------------------------------------------------------------- input checking (the edge)
def _is_missing(values: NDArray[Any]) -> NDArray[Any]:
    if values.dtype.kind == "f":
        nan: NDArray[Any] = np.isnan(values)
        return nan
    if values.dtype.kind == "O":
        pd = sys.modules.get("pandas")
        if pd is not None:  # already loaded for a DataFrame: its isna is vectorised
            return np.asarray(pd.isna(values), dtype=bool)
        return np.fromiter(
            (v is None or (isinstance(v, float) and v != v) or type(v).__name__ in ("NAType", "NaTType") for v in values),
            dtype=bool,
            count=len(values),
        )
    return np.zeros(len(values), dtype=bool)


def as_columns(data: Any, what: str) -> dict[str, Any]:
    """Columns of a DataFrame, a mapping of name to values, or a 2-D array (columns ``"0"``, ``"1"``, …)."""
    if hasattr(data, "columns") and hasattr(data, "__getitem__") and hasattr(data, "shape"):
        if data.shape[0] == 0:
            raise InvalidValue(f"the {what} table is empty (no rows)")
        return {str(name): data[name] for name in data.columns}
    if isinstance(data, Mapping):
        out = {str(k): v for k, v in data.items()}
    else:
        arr = np.asarray(data)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise InvalidValue(f"the {what} data must be a table (2-D), got {arr.ndim} dimensions")
        out = {str(i): arr[:, i] for i in range(arr.shape[1])}
    if not out:
        raise InvalidValue(f"the {what} table has no columns")
    lengths = {len(v) for v in out.values()}
    if lengths == {0}:
        raise InvalidValue(f"the {what} table is empty (no rows)")
    if len(lengths) > 1:
        raise InvalidValue(f"the {what} columns have different lengths: {sorted(lengths)}")
    return out


def _is_numeric_dtype(values: Any) -> bool:
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        return False
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:  # a pandas extension dtype (Int64, Float64, string, category…)
        return bool(getattr(dtype, "_is_numeric", False)) and getattr(dtype, "kind", "") in "iuf"
    return np_dtype.kind in "iuf"


def _to_numpy(values: Any) -> NDArray[Any]:
    out: NDArray[Any]
    if hasattr(values, "to_numpy"):
        if _is_numeric_dtype(values):
            out = np.asarray(values.to_numpy(dtype=float, na_value=np.nan))
        else:
            out = np.asarray(values.to_numpy(dtype=object))
    else:
        out = np.asarray(values)
    return out


def _clean(
    column: str, values: Any, kind: Kind, what: str, nan_policy: NanPolicy
) -> NDArray[Any]:
    arr = _to_numpy(values)
    if arr.ndim != 1:
        raise InvalidValue(f"column {column!r} of the {what} data is not one-dimensional")
    if kind == "numeric":
        if arr.dtype.kind not in "iuf":
            missing = _is_missing(arr)
            try:
                arr = np.where(missing, np.nan, arr).astype(float)
            except (TypeError, ValueError):
                bad = next(v for v in arr[~missing] if not _float_ok(v))
                raise InvalidValue(
                    f"column {column!r} is numeric in the reference but the {what} data holds "
                    f"a non-numeric value: {bad!r}"
                ) from None
        arr = arr.astype(float, copy=False)
        bad_mask = ~np.isfinite(arr)
        if bad_mask.any():
            if nan_policy == "raise":
                n = int(bad_mask.sum())
                raise InvalidValue(
                    f"column {column!r} of the {what} data has {n} missing or infinite value(s); "
                    "clean them or pass nan_policy='omit'"
                )
            arr = arr[~bad_mask]
    else:
        missing = _is_missing(arr)
        if missing.any():
            if nan_policy == "raise":
                raise InvalidValue(
                    f"column {column!r} of the {what} data has {int(missing.sum())} missing value(s); "
                    "clean them or pass nan_policy='omit'"
                )
            arr = arr[~missing]
        arr = arr.astype(str)
    if len(arr) == 0:
        raise InvalidValue(f"column {column!r} of the {what} data has no usable values")
    return arr


def _float_ok(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _methods_for(kind: str) -> tuple[str, ...]:
    return NUMERIC_METHODS if kind == "numeric" else CATEGORICAL_METHODS


def _kind_of(values: Any, forced_categorical: bool) -> Kind:
    if forced_categorical or not _is_numeric_dtype(values):
        return "categorical"
    return "numeric"


def data_drift(
    reference: Any,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    method: str = "auto",
    methods: Mapping[str, str] | None = None,
    thresholds: Thresholds | None = None,
    nan_policy: NanPolicy = "raise",
    title: str = "Data drift",
    few_values_as_categories: bool = True,
    all_stats: bool = False,
) -> DriftReport:
    """Compare each column of ``current`` with the same column of ``reference``.

    ``reference`` / ``current``: pandas DataFrames, mappings of column name to
    values, or 2-D arrays. ``columns``: which to compare (default: every
    column of the reference; each must exist on both sides). ``categorical``:
    columns to treat as categories even if numeric. ``method``: ``"auto"``
    (see the module docstring), ``"ks"``, ``"psi"``, ``"wasserstein"`` or
    ``"chi2"`` for every column; ``methods``: per-column overrides.
    ``nan_policy="omit"`` drops missing values instead of raising
    :class:`~mlops_sdk.errors.InvalidValue`. ``all_stats=True`` computes the
    KS p-value of big numeric samples too (see :func:`column_drift`).

    >>> import numpy as np
    >>> x = np.arange(2000.0)
    >>> data_drift({"x": x}, {"x": x}).drifted
    []
    """
    if method not in METHODS:
        raise InvalidValue(f"unknown drift method {method!r}; use one of {', '.join(METHODS)}")
    if nan_policy not in ("raise", "omit"):
        raise InvalidValue(f"nan_policy must be 'raise' or 'omit', not {nan_policy!r}")
    th = thresholds or Thresholds()
    ref_cols = as_columns(reference, "reference")
    cur_cols = as_columns(current, "current")
    names = list(columns) if columns is not None else list(ref_cols)
    if not names:
        raise InvalidValue("no columns to compare")
    for label, cols in (("reference", ref_cols), ("current", cur_cols)):
        missing = [n for n in names if n not in cols]
        if missing:
            raise InvalidValue(f"the {label} data has no column(s) {', '.join(map(repr, missing))}")
    per_column = dict(methods or {})
    unknown = sorted(set(per_column) - set(names))
    if unknown:
        raise InvalidValue(f"methods= names column(s) not compared: {', '.join(map(repr, unknown))}")
    forced = set(categorical)
    jobs: list[tuple[str, NDArray[Any], NDArray[Any], Kind, str]] = []
    for name in names:
        kind = _kind_of(ref_cols[name], name in forced)
        ref = _clean(name, ref_cols[name], kind, "reference", nan_policy)
        col_method = per_column.get(name, method)
        if (kind == "numeric" and col_method == "auto" and few_values_as_categories
                and len(np.unique(ref)) <= FEW_VALUES):
                kind = "categorical"
                ref = _clean(name, ref_cols[name], kind, "reference", nan_policy)
        if name not in per_column and col_method not in ("auto", *_methods_for(kind)):
            col_method = "auto"  # a global method that does not fit this kind: the kind's default
        cur = _clean(name, cur_cols[name], kind, "current", nan_policy)
        jobs.append((name, ref, cur, kind, col_method))

    def one(job: tuple[str, NDArray[Any], NDArray[Any], Kind, str]) -> ColumnDrift:
        name, ref, cur, kind, col_method = job
        return column_drift(name, ref, cur, kind, method=col_method, thresholds=th, all_stats=all_stats)

    # Columns are independent, and numpy's sorts and searches (most of the time) release the
    # GIL: one thread per core. Inputs were all checked above, so errors still come in order.
    workers = min(len(jobs), os.cpu_count() or 1)
    if workers > 1 and sum(len(j[1]) + len(j[2]) for j in jobs) > 100_000:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(one, jobs))
    else:
        results = [one(j) for j in jobs]
    return DriftReport(tuple(results), drift_share=th.drift_share, title=title)


def prediction_drift(
    reference: Any,
    current: Any,
    *,
    categorical: bool | None = None,
    method: str = "auto",
    thresholds: Thresholds | None = None,
    nan_policy: NanPolicy = "raise",
) -> DriftReport:
    """Drift of a model's outputs: one column, ``prediction``.

    ``reference`` / ``current``: 1-D predictions (class labels or numbers).
    Labels (strings, booleans, or at most 5 distinct numbers) are compared as
    categories unless ``categorical`` says otherwise.

    >>> prediction_drift([0, 1] * 600, [1] * 1200).drifted
    ['prediction']
    """
    ref = {"prediction": _to_numpy(reference)}
    cur = {"prediction": _to_numpy(current)}
    return data_drift(
        ref,
        cur,
        categorical=["prediction"] if categorical else [],
        method=method,
        thresholds=thresholds,
        nan_policy=nan_policy,
        title="Prediction drift",
        few_values_as_categories=categorical is not False,
    )


__all__ = [
    "ColumnDrift",
    "DriftReport",
    "chi2_pvalue",
    "column_drift",
    "data_drift",
    "ks_pvalue",
    "prediction_drift",
    "psi",
    "psi_categorical",
    "wasserstein_norm",
]
