"""``mlops experiments``: the experiments of a workspace."""

from __future__ import annotations

from typing import Any

import click

from mlops_sdk.cli.output import echo_json, json_option, note, print_table
from mlops_sdk.cli.state import get_workspace


@click.group("experiments")
def experiments_group() -> None:
    """List experiments."""


@experiments_group.command("ls")
@json_option
def experiments_ls(as_json: bool) -> None:
    """List experiments, oldest first, with how many runs each holds."""
    from mlops_sdk.display import fmt_time

    ws = get_workspace()
    items: list[dict[str, Any]] = [
        {
            "id": exp.id,
            "name": exp.name,
            "runs": exp.count_runs(),
            "created_at": exp.created_at,
            "tags": exp.tags,
        }
        for exp in ws.experiments()
    ]
    if as_json:
        echo_json(items)
        return
    if not items:
        note("no experiments found")
        return
    print_table(
        ["name", "id", "runs", "created"],
        [(e["name"], e["id"], e["runs"], fmt_time(e["created_at"])) for e in items],
    )
