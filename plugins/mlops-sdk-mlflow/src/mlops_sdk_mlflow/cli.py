"""``mlops import-mlflow``: copy an MLflow store's experiments and runs into the workspace."""

from __future__ import annotations

from typing import Any

import click
from mlops_sdk.cli.output import echo_json, json_option, note, print_table


@click.command("import-mlflow")
@click.argument("uri")
@click.option(
    "--experiment",
    "-e",
    "experiments",
    multiple=True,
    metavar="NAME",
    help="Import only this MLflow experiment (repeat for several). Default: every active one.",
)
@json_option
def import_mlflow_command(uri: str, experiments: tuple[str, ...], as_json: bool) -> None:
    """Copy experiments and runs from the MLflow tracking store at URI into the workspace.

    URI is any MLflow tracking URI: http://host:5000, sqlite:///mlruns.db,
    databricks… Params, every metric point, tags, status and times are
    copied; artifact files are not. Running it again copies only runs that
    are new (each imported run keeps its MLflow id in the tag
    mlflow.source_run_id).

    \b
    mlops -w . import-mlflow sqlite:///mlruns.db --experiment churn
    """
    from mlops_sdk.cli.state import get_workspace
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mlops_sdk_mlflow.importer import import_mlflow

    ws = get_workspace()
    columns: list[Any] = [
        TextColumn("importing runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("import", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = import_mlflow(ws, uri, list(experiments) or None, progress=advance)
    if as_json:
        echo_json(summary.to_dict())
        return
    for warning in summary.warnings:
        note(f"warning: {warning}")
    if not summary.experiments:
        note(f"no experiments in {summary.source}")
        return
    print_table(
        ["experiment", "id", "imported", "skipped"],
        [(e.name, e.id, e.runs_imported, e.runs_skipped) for e in summary.experiments],
    )
    note(
        f"{summary.runs_imported} runs imported, {summary.runs_skipped} already there, "
        f"{summary.metric_points} metric points, from {summary.source}"
    )
