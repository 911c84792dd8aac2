"""``mlops monitor``: drift, performance and fairness of current data against a reference.

Exit codes: 0 when no alert of a ``--fail-on`` kind fired, 1 when one did (or
on an error), 2 on bad usage, so CI jobs and cron can act on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlops_sdk.cli.output import echo_json, json_option, note, print_table

if TYPE_CHECKING:
    from mlops_sdk.monitor import MonitorReport

KINDS = ("drift", "performance", "bias")


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def read_table(path: str) -> Any:
    """A DataFrame from a .csv, .tsv, .parquet, .json or .jsonl file."""
    from mlops_sdk.errors import InvalidValue, MissingDependency

    try:
        import pandas as pd
    except ImportError as exc:
        raise MissingDependency("mlops monitor needs pandas: pip install pandas") from exc
    p = Path(path)
    if not p.is_file():
        raise InvalidValue(f"no such file: {path}")
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(p)
        if suffix == ".tsv":
            return pd.read_csv(p, sep="\t")
        if suffix == ".parquet":
            return pd.read_parquet(p)
        if suffix == ".jsonl":
            return pd.read_json(p, lines=True)
        if suffix == ".json":
            return pd.read_json(p)
    except (ValueError, OSError) as exc:
        raise InvalidValue(f"cannot read {path} as a table: {exc}") from exc
    raise InvalidValue(f"{path}: use a .csv, .tsv, .parquet, .json or .jsonl file")


def _dataset_frame(ref: str) -> Any:
    from mlops_sdk.cli.data import resolve_version, split_ref
    from mlops_sdk.cli.state import get_workspace

    ws = get_workspace()
    name, version = split_ref(ws, ref)
    return resolve_version(ws, name, version).to_pandas()


def _table(dataset: str | None, file: str | None, what: str) -> Any:
    if (dataset is None) == (file is None):
        raise click.UsageError(f"give exactly one of --{what} DATASET[@V] and --{what}-file FILE")
    return _dataset_frame(dataset) if dataset is not None else read_table(file or "")


def _print_report(report: MonitorReport) -> None:
    if report.drift is not None:
        rows = [
            [c.column, c.kind, c.method, c.score, c.threshold, "DRIFT" if c.drifted else "ok"]
            for c in report.drift.columns
        ]
        print_table(["column", "type", "test", "score", "threshold", "verdict"], rows,
                    title=f"Data drift: {len(report.drift.drifted)} of {len(report.drift.columns)} columns")
    if report.prediction_drift is not None:
        c = report.prediction_drift.columns[0]
        click.echo(f"\nPrediction drift: {c.method} {c.score:.4g} -> {'DRIFT' if c.drifted else 'ok'}")
    if report.performance is not None:
        perf = report.performance
        ref = perf.reference_metrics or {}
        print_table(["metric", "current", "reference"],
                    [[k, v, ref.get(k)] for k, v in perf.metrics.items()],
                    title=f"Performance ({perf.task}, {perf.rows} rows)", spaced=True)
    if report.fairness is not None:
        fair = report.fairness
        print_table(["group", "rows", "selection rate", "accuracy", "TPR", "FPR"],
                    [[g.group, g.rows, g.selection_rate, g.accuracy, g.tpr, g.fpr] for g in fair.groups],
                    title=f"Fairness across {fair.sensitive}: demographic parity diff "
                          f"{fair.demographic_parity_difference:.3f}, equalized odds diff "
                          f"{fair.equalized_odds_difference:.3f}", spaced=True)
    alerts = report.alerts
    click.echo(f"\n{len(alerts)} alert(s)" + (":" if alerts else ""))
    for a in alerts:
        click.echo(f"  [{a.kind}] {a.message}")


@click.command("monitor")
@click.argument("deployment", required=False, metavar="[DEPLOYMENT]")
@click.option("--reference", "reference", metavar="DATASET[@V]", help="Reference dataset version.")
@click.option("--reference-file", metavar="FILE", help="Reference table from a file instead.")
@click.option("--current", "current", metavar="DATASET[@V]", help="Current dataset version.")
@click.option("--current-file", metavar="FILE", help="Current table from a file (.csv, .parquet, .jsonl…).")
@click.option("--columns", multiple=True, metavar="COLS", help="Feature columns to check (comma-separated; default: all).")
@click.option("--categorical", multiple=True, metavar="COLS", help="Columns to treat as categories.")
@click.option("--target", metavar="COL", help="Label column (performance, fairness).")
@click.option("--prediction", metavar="COL", help="Prediction column (prediction drift, performance).")
@click.option("--score", metavar="COL", help="Positive-class probability column (ROC AUC).")
@click.option("--sensitive", metavar="COL", help="Sensitive attribute (fairness).")
@click.option("--timestamp", metavar="COL", help="Time column: performance per --window.")
@click.option("--window", default="1D", show_default=True, help="Time window (a pandas frequency: 1D, 6h, 1W).")
@click.option("--method", default="auto", show_default=True,
              type=click.Choice(["auto", "ks", "psi", "wasserstein", "chi2"]), help="Drift test for every column.")
@click.option("--nan-policy", default="raise", show_default=True, type=click.Choice(["raise", "omit"]))
@click.option("--fail-on", "fail_on", multiple=True, metavar="KINDS",
              help="Exit 1 when an alert of these kinds fires: drift,performance,bias.")
@click.option("--sink", "sinks", multiple=True, metavar="SINK", help="Deliver alerts: log, webhook:https://…")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, writable=True), help="Write the HTML report here.")
@json_option
def monitor_cmd(
    deployment: str | None,
    reference: str | None,
    reference_file: str | None,
    current: str | None,
    current_file: str | None,
    columns: tuple[str, ...],
    categorical: tuple[str, ...],
    target: str | None,
    prediction: str | None,
    score: str | None,
    sensitive: str | None,
    timestamp: str | None,
    window: str,
    method: str,
    nan_policy: str,
    fail_on: tuple[str, ...],
    sinks: tuple[str, ...],
    html_path: str | None,
    as_json: bool,
) -> None:
    """Check current data against a reference: drift, performance, fairness.

    \b
    mlops monitor --reference customers@1 --current-file today.csv --fail-on drift
    mlops monitor churn-api --reference customers@1 --fail-on drift   # a deployment's inference log
    mlops monitor --reference train@3 --current scored@7 --target churned \\
        --prediction pred --sensitive gender --fail-on drift,performance,bias --html report.html
    """
    kinds = _split(fail_on)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise click.BadParameter(f"unknown kind(s) {', '.join(bad)}; use {','.join(KINDS)}", param_hint="'--fail-on'")
    ref_df = _table(reference, reference_file, "reference")
    if deployment is not None:  # current = the deployment's inference log (its input columns)
        if current is not None or current_file is not None:
            raise click.UsageError("give a DEPLOYMENT or --current / --current-file, not both")
        from mlops_sdk.cli.state import get_workspace
        from mlops_sdk.serving.inference_log import META_COLUMNS

        cur_df = get_workspace().get_deployment(deployment).inference_log()
        if cur_df.empty:
            from mlops_sdk.errors import DeploymentError

            raise DeploymentError(f"deployment {deployment!r} has no logged requests yet to monitor")
        if not columns:
            columns = (",".join(str(c) for c in ref_df.columns if c in cur_df.columns and c not in META_COLUMNS
                                and c not in (target, sensitive)),)
    else:
        cur_df = _table(current, current_file, "current")
    from mlops_sdk.monitor import monitor

    cols = _split(columns) or None
    report = monitor(
        ref_df,
        cur_df,
        columns=cols,
        categorical=_split(categorical),
        target=target,
        prediction=prediction,
        score=score,
        sensitive=sensitive,
        timestamp=timestamp,
        window=window,
        method=method,
        nan_policy=nan_policy,
        sinks=list(sinks),
    )
    if html_path:
        Path(html_path).write_text(report.to_html(), encoding="utf-8")
    firing = [a for a in report.alerts if a.kind in kinds]
    if as_json:
        import json

        data = json.loads(report.to_json())
        data["failed"] = bool(firing)
        echo_json(data)
    else:
        _print_report(report)
        if html_path:
            note(f"HTML report written to {html_path}")
    if firing:
        if not as_json:
            note(f"failing: {len(firing)} alert(s) of kind {', '.join(sorted({a.kind for a in firing}))}")
        raise SystemExit(1)


__all__ = ["monitor_cmd", "read_table"]
