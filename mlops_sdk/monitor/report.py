"""Monitoring reports as JSON and as one self-contained HTML page.

The HTML page has no scripts, no styles or images from elsewhere and no
external links: every chart is inline SVG built here (bars for histograms of
reference vs current, lines for metrics over time), and every piece of text
(column names, category values, messages) is HTML-escaped. It opens from a
file, an e-mail attachment or a CI artifact.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from mlops_sdk.monitor.alerts import Alert, deliver

if TYPE_CHECKING:
    from mlops_sdk.monitor.drift import ColumnDrift, DriftReport
    from mlops_sdk.monitor.fairness import FairnessReport
    from mlops_sdk.monitor.performance import PerformanceReport

REF_COLOR = "#4c78a8"
CUR_COLOR = "#f58518"


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as ``None`` and numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@attrs.frozen
class MonitorReport:
    """Everything one monitoring pass found: drift, prediction drift, performance, fairness.

    Parts that were not asked for are ``None``. ``alerts`` gathers the alerts of
    every part; ``drifted`` the drifted feature columns.
    """

    drift: DriftReport | None = None
    prediction_drift: DriftReport | None = None
    performance: PerformanceReport | None = None
    fairness: FairnessReport | None = None

    def _parts(self) -> list[Any]:
        return [p for p in (self.drift, self.prediction_drift, self.performance, self.fairness) if p is not None]

    @property
    def alerts(self) -> list[Alert]:
        return [a for part in self._parts() for a in part.alerts]

    @property
    def drifted(self) -> list[str]:
        return self.drift.drifted if self.drift is not None else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift.to_dict() if self.drift else None,
            "prediction_drift": self.prediction_drift.to_dict() if self.prediction_drift else None,
            "performance": self.performance.to_dict() if self.performance else None,
            "fairness": self.fairness.to_dict() if self.fairness else None,
            "alerts": [a.to_dict() for a in self.alerts],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(json_safe(self.to_dict()), allow_nan=False, **kwargs)

    def to_html(self) -> str:
        return render_html(
            drift=self.drift,
            prediction_drift=self.prediction_drift,
            performance=self.performance,
            fairness=self.fairness,
        )

    def deliver(self, sinks: Sequence[str] = (), *, plugins: bool = True) -> None:
        deliver(self.alerts, sinks, plugins=plugins)


# --------------------------------------------------------------------------- SVG
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1000 or abs(x) < 0.01:
        return f"{x:.3g}"
    return f"{x:.3g}"


def bars_svg(labels: Sequence[str], reference: Sequence[float], current: Sequence[float],
             *, width: int = 420, height: int = 180) -> str:
    """Grouped bars: the share of rows per bin or category, reference vs current."""
    n = max(len(labels), 1)
    top = max([*reference, *current, 1e-12])
    pad_l, pad_b, pad_t = 36, 34, 8
    plot_w, plot_h = width - pad_l - 6, height - pad_b - pad_t
    slot = plot_w / n
    bar = max(slot * 0.4, 0.5)
    parts = [
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 6}" y2="{pad_t + plot_h}" stroke="#999"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 8}" font-size="9" text-anchor="end">{top:.0%}</text>',
        f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" font-size="9" text-anchor="end">0%</text>',
    ]
    for i, (label, r, c) in enumerate(zip(labels, reference, current, strict=True)):
        x = pad_l + i * slot + slot * 0.1
        for j, (v, color, who) in enumerate(((r, REF_COLOR, "reference"), (c, CUR_COLOR, "current"))):
            h = plot_h * v / top
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{_e(label)} {who}: {v:.1%}</title></rect>'
            )
    step = max(1, math.ceil(n / 8))
    for i in range(0, len(labels), step):
        x = pad_l + (i + 0.5) * slot
        parts.append(
            f'<text x="{x:.1f}" y="{height - pad_b + 14}" font-size="9" text-anchor="middle">{_e(labels[i])[:14]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def lines_svg(xlabels: Sequence[str], series: Mapping[str, Sequence[float | None]],
              *, width: int = 520, height: int = 200) -> str:
    """Metrics over time: one polyline per metric, a point per window."""
    values = [v for s in series.values() for v in s if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    pad_l, pad_b, pad_t = 44, 36, 10
    plot_w, plot_h = width - pad_l - 100, height - pad_b - pad_t
    n = max(len(xlabels), 1)
    colors = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2"]

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad_l + (plot_w * (i / (n - 1)) if n > 1 else plot_w / 2)
        return x, pad_t + plot_h - plot_h * (v - lo) / (hi - lo)

    parts = [
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{pad_l + plot_w}" y2="{pad_t + plot_h}" stroke="#999"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 8}" font-size="9" text-anchor="end">{_fmt(hi)}</text>',
        f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" font-size="9" text-anchor="end">{_fmt(lo)}</text>',
    ]
    for k, (name, s) in enumerate(series.items()):
        color = colors[k % len(colors)]
        pts = [xy(i, v) for i, v in enumerate(s) if v is not None]
        if pts:
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>'
            )
            for (x, y), v in zip(pts, [v for v in s if v is not None], strict=True):
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{_e(name)}: {v:.4g}</title></circle>')
        parts.append(
            f'<text x="{pad_l + plot_w + 8}" y="{pad_t + 12 + 14 * k}" font-size="11" fill="{color}">{_e(name)}</text>'
        )
    step = max(1, math.ceil(n / 6))
    for i in range(0, len(xlabels), step):
        x, _ = xy(i, lo)
        parts.append(
            f'<text x="{x:.1f}" y="{height - pad_b + 14}" font-size="9" text-anchor="middle">{_e(xlabels[i])[:16]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def column_svg(col: ColumnDrift) -> str:
    h = col.histogram
    if not h:
        return ""
    if "edges" in h:
        edges = h["edges"]
        labels = [_fmt(float(e)) for e in edges[:-1]]
    else:
        labels = list(h["categories"])
    return bars_svg(labels, h["reference"], h["current"])


# --------------------------------------------------------------------------- HTML
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}
.bad{color:#b00020;font-weight:600}.ok{color:#1b7f3b}.card{display:inline-block;vertical-align:top;margin:6px;
padding:8px;border:1px solid #e3e3e3;border-radius:6px}.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.summary{font-size:1.1em;padding:.6em 1em;border-radius:6px;background:#f6f6f6}
"""


def _verdict(bad: bool, yes: str = "drift", no: str = "no drift") -> str:
    return f'<span class="bad">{_e(yes)}</span>' if bad else f'<span class="ok">{_e(no)}</span>'


def _drift_section(rep: DriftReport) -> str:
    out = [f"<h2>{_e(rep.title)}</h2>"]
    out.append(
        f'<p class="summary">{len(rep.drifted)} of {len(rep.columns)} columns drifted '
        f"({rep.share_drifted:.0%}); dataset drift: {_verdict(rep.dataset_drift, 'yes', 'no')}</p>"
    )
    out.append("<table><tr><th>column</th><th>type</th><th>test</th><th>score</th><th>threshold</th>"
               "<th>verdict</th><th>all statistics</th></tr>")
    for c in sorted(rep.columns, key=lambda c: (not c.drifted, c.column)):
        stats = ", ".join(f"{_e(k)} {v:.4g}" for k, v in c.stats.items())
        out.append(
            f"<tr><td>{_e(c.column)}</td><td>{_e(c.kind)}</td><td>{_e(c.method)}</td><td>{c.score:.4g}</td>"
            f"<td>{c.threshold:g}</td><td>{_verdict(c.drifted)}</td><td>{stats}</td></tr>"
        )
    out.append("</table>")
    out.append(
        f'<p class="legend">share of rows per bin:<span style="background:{REF_COLOR}"></span>reference'
        f'<span style="background:{CUR_COLOR}"></span>current</p>'
    )
    for c in sorted(rep.columns, key=lambda c: (not c.drifted, c.column)):
        out.append(f'<div class="card"><b>{_e(c.column)}</b> {_verdict(c.drifted)}<br>{column_svg(c)}</div>')
    return "".join(out)


def _metrics_table(metrics: dict[str, Any], reference: dict[str, Any] | None) -> str:
    rows = ["<table><tr><th>metric</th><th>current</th><th>reference</th></tr>"]
    for k, v in metrics.items():
        r = reference.get(k) if reference else None
        rows.append(
            f"<tr><td>{_e(k)}</td><td>{'-' if v is None else f'{v:.4g}'}</td>"
            f"<td>{'-' if r is None else f'{r:.4g}'}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _performance_section(rep: PerformanceReport) -> str:
    out = [f"<h2>Model performance ({_e(rep.task)}, {rep.rows} labelled rows)</h2>"]
    out.append(_metrics_table(dict(rep.metrics), dict(rep.reference_metrics) if rep.reference_metrics else None))
    if rep.windows:
        names = list(rep.windows[0].metrics)
        series = {n: [w.metrics.get(n) for w in rep.windows] for n in names}
        out.append("<h3>Over time</h3>")
        out.append(lines_svg([w.start[:16] for w in rep.windows], series))
    return "".join(out)


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _fairness_section(rep: FairnessReport) -> str:
    out = [f"<h2>Fairness across {_e(rep.sensitive)}</h2>"]
    out.append(
        f"<p>demographic parity difference {rep.demographic_parity_difference:.3f} "
        f"(limit {rep.thresholds.demographic_parity:g}), equalized odds difference "
        f"{rep.equalized_odds_difference:.3f} (limit {rep.thresholds.equalized_odds:g})</p>"
    )
    out.append("<table><tr><th>group</th><th>rows</th><th>selection rate</th><th>accuracy</th>"
               "<th>TPR</th><th>FPR</th></tr>")
    for g in rep.groups:
        out.append(
            f"<tr><td>{_e(g.group)}</td><td>{g.rows}</td><td>{_rate(g.selection_rate)}</td><td>{_rate(g.accuracy)}</td>"
            f"<td>{_rate(g.tpr)}</td><td>{_rate(g.fpr)}</td></tr>"
        )
    out.append("</table>")
    labels = [g.group for g in rep.groups]
    out.append(bars_svg(labels, [g.selection_rate for g in rep.groups], [g.accuracy for g in rep.groups]))
    out.append(f'<p class="legend"><span style="background:{REF_COLOR}"></span>selection rate'
               f'<span style="background:{CUR_COLOR}"></span>accuracy</p>')
    return "".join(out)


def render_html(
    *,
    drift: DriftReport | None = None,
    prediction_drift: DriftReport | None = None,
    performance: PerformanceReport | None = None,
    fairness: FairnessReport | None = None,
    title: str = "Model monitoring report",
) -> str:
    """One self-contained HTML page (inline CSS and SVG, all text escaped)."""
    parts = [p for p in (drift, prediction_drift, performance, fairness) if p is not None]
    alerts = [a for p in parts for a in p.alerts]
    body = [f"<h1>{_e(title)}</h1>"]
    if alerts:
        body.append(f'<h2 class="bad">{len(alerts)} alert(s)</h2><ul>')
        body.extend(f"<li><b>{_e(a.kind)}</b> · {_e(a.subject)}: {_e(a.message)}</li>" for a in alerts)
        body.append("</ul>")
    else:
        body.append('<p class="summary ok">No alerts: nothing crossed a threshold.</p>')
    if drift is not None:
        body.append(_drift_section(drift))
    if prediction_drift is not None:
        body.append(_drift_section(prediction_drift))
    if performance is not None:
        body.append(_performance_section(performance))
    if fairness is not None:
        body.append(_fairness_section(fairness))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        + "".join(body)
        + "</body></html>"
    )


__all__ = ["MonitorReport", "bars_svg", "json_safe", "lines_svg", "render_html"]
