"""HTML tables for Jupyter (``_repr_html_``) and plain rows for terminals.

Kept free of any UI dependency: notebooks render the HTML, the CLI turns the
same rows into rich tables.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from collections.abc import Iterable, Sequence
from typing import Any


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return ""
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.6g}"
    if value is None:
        return ""
    return str(value)


def fmt_duration(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return ""
    seconds = end - start
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.1f}h"


def html_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None) -> str:
    """A small, escaped HTML table."""
    parts = ['<table class="mlops-table">']
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr></thead>")
    parts.append("<tbody>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{html.escape(fmt_value(c))}</td>" for c in row) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def runs_table(records: Sequence[Any], *, max_columns: int = 12) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows for a list of runs: attributes, then params and metrics seen in any run."""
    param_keys: list[str] = []
    metric_keys: list[str] = []
    for r in records:
        for k in r.params:
            if k not in param_keys:
                param_keys.append(k)
        for k in r.metrics:
            if k not in metric_keys:
                metric_keys.append(k)
    budget = max(max_columns - 5, 0)
    metric_keys = metric_keys[:budget]
    param_keys = param_keys[: max(budget - len(metric_keys), 0)]
    headers = ["id", "name", "status", "start", "duration"]
    headers += [f"params.{k}" for k in param_keys] + [f"metrics.{k}" for k in metric_keys]
    rows = []
    for r in records:
        row: list[Any] = [r.id[:8], r.name, str(r.status), fmt_time(r.start_time), fmt_duration(r.start_time, r.end_time)]
        row += [r.params.get(k) for k in param_keys]
        row += [r.metrics.get(k) for k in metric_keys]
        rows.append(row)
    return headers, rows
