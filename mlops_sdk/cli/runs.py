"""``mlops runs``: list, show and compare runs."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from mlops_sdk.cli.output import echo_json, json_option, note, print_kv, print_table
from mlops_sdk.cli.state import get_workspace

if TYPE_CHECKING:
    from mlops_sdk.records import RunRecord
    from mlops_sdk.run import Run
    from mlops_sdk.workspace import Workspace

MIN_PREFIX = 4
SHORT_ID = 8
_PREFIX_SAFE = re.compile(r"[A-Za-z0-9\-]+")


@click.group("runs")
def runs_group() -> None:
    """List, show and compare runs."""


# -- shared helpers -------------------------------------------------------------------
def experiment_names(ws: Workspace) -> dict[str, str]:
    """Experiment id to name, for every experiment of the workspace."""
    return {exp.id: exp.name for exp in ws.experiments()}


def run_to_dict(record: RunRecord, experiments: Mapping[str, str]) -> dict[str, Any]:
    """The stable JSON shape of a run (``runs ls`` and the head of ``runs show``)."""
    return {
        "id": record.id,
        "name": record.name,
        "experiment_id": record.experiment_id,
        "experiment": experiments.get(record.experiment_id),
        "status": str(record.status),
        "start_time": record.start_time,
        "end_time": record.end_time,
        "parent_id": record.parent_id,
        "params": dict(record.params),
        "metrics": dict(record.metrics),
        "tags": dict(record.tags),
    }


def resolve_run(ws: Workspace, ref: str) -> Run:
    """The run whose id is ``ref``, or the only run whose id starts with ``ref`` (4+ characters)."""
    from mlops_sdk.errors import InvalidValue, RunNotFound

    try:
        return ws.get_run(ref)
    except RunNotFound:
        if len(ref) < MIN_PREFIX:
            raise RunNotFound(
                f"no run with id {ref!r} (an id prefix needs at least {MIN_PREFIX} characters)"
            ) from None
        if not _PREFIX_SAFE.fullmatch(ref):
            raise RunNotFound(f"no run with id {ref!r}") from None
    matches = [r for r in ws.runs(f"id like '{ref}%'") if r.id.startswith(ref)]
    if not matches:
        raise RunNotFound(f"no run with id or id prefix {ref!r}")
    if len(matches) > 1:
        shown = ", ".join(r.id for r in matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise InvalidValue(
            f"run id prefix {ref!r} is ambiguous: it matches {len(matches)} runs ({shown}); give more characters"
        )
    return matches[0]


def context_summary(context: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a run's recorded context people look at first."""

    def section(name: str) -> Mapping[str, Any]:
        value = context.get(name)
        return value if isinstance(value, Mapping) else {}

    git, python, platform, command = (
        section("git"),
        section("python"),
        section("platform"),
        section("command"),
    )
    argv = command.get("argv")
    return {
        "git": (
            {"commit": git.get("commit"), "branch": git.get("branch"), "dirty": git.get("dirty")}
            if git
            else None
        ),
        "python": python.get("version"),
        "platform": " ".join(
            str(platform[k]) for k in ("system", "release", "machine") if platform.get(k)
        )
        or None,
        "host": platform.get("host"),
        "command": list(argv) if isinstance(argv, (list, tuple)) else argv,
        "cwd": command.get("cwd"),
    }


def _check_query(filter_: str | None, order_by: Sequence[str]) -> None:
    """Parse --filter and --order-by up front, so an error names the option at fault."""
    from mlops_sdk.errors import InvalidFilter
    from mlops_sdk.query import parse_filter, parse_order_by

    try:
        parse_filter(filter_)
    except InvalidFilter as exc:
        raise InvalidFilter(f"invalid --filter: {exc}") from exc
    try:
        parse_order_by(list(order_by) or None)
    except InvalidFilter as exc:
        raise InvalidFilter(f"invalid --order-by: {exc}") from exc


# -- runs ls --------------------------------------------------------------------------
@runs_group.command("ls")
@click.option(
    "--experiment",
    "-e",
    "experiments",
    multiple=True,
    metavar="NAME",
    help="Only runs of this experiment (repeatable; default: all experiments).",
)
@click.option(
    "--filter",
    "-f",
    "filter_",
    metavar="EXPR",
    help='Filter expression, e.g. "metrics.acc > 0.8 and params.n = 100".',
)
@click.option(
    "--order-by",
    "-o",
    "order_by",
    multiple=True,
    metavar="KEY",
    help='Sort key, e.g. -metrics.acc or "params.n ASC" (repeatable; then newest first).',
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="At most this many runs (0: no limit).",
)
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many runs first.")
@json_option
def runs_ls(
    experiments: tuple[str, ...],
    filter_: str | None,
    order_by: tuple[str, ...],
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List runs, newest first.

    \b
    mlops runs ls -e churn -f "metrics.acc > 0.8" -o -metrics.acc --limit 10
    """
    from mlops_sdk.display import runs_table

    _check_query(filter_, order_by)
    ws = get_workspace()
    runs = ws.runs(
        filter_,
        list(order_by) or None,
        experiments=list(experiments) or None,
        limit=limit + 1 if limit else None,
        offset=offset,
    )
    more = bool(limit) and len(runs) > limit
    records = [r.record for r in (runs[:limit] if limit else runs)]
    names = experiment_names(ws)
    if as_json:
        echo_json([run_to_dict(r, names) for r in records])
        return
    if not records:
        note("no runs found")
        return
    headers, rows = runs_table(records, max_columns=14)
    headers.insert(1, "experiment")
    for row, record in zip(rows, records, strict=True):
        row.insert(1, names.get(record.experiment_id, record.experiment_id))
    print_table(headers, rows, no_wrap={"id", "status", "start", "duration"})
    if more:
        note(f"showing runs {offset + 1}-{offset + limit}; more match (use --limit / --offset)")


# -- runs show ------------------------------------------------------------------------
@runs_group.command("show")
@click.argument("run_id")
@json_option
def runs_show(run_id: str, as_json: bool) -> None:
    """Show one run: attributes, params, metrics, tags, artifacts and where it ran.

    RUN_ID may be a unique prefix of at least 4 characters.
    """
    from mlops_sdk.display import fmt_duration, fmt_time

    ws = get_workspace()
    run = resolve_run(ws, run_id)
    record = run.record
    names = experiment_names(ws)
    artifacts = run.artifacts()
    summary = context_summary(record.context)
    if as_json:
        data = run_to_dict(record, names)
        data["error"] = record.error
        data["artifacts"] = [
            {"path": a.path, "size": a.size, "digest": a.digest} for a in artifacts
        ]
        data["context"] = summary
        echo_json(data)
        return

    experiment = names.get(record.experiment_id)
    attributes: list[tuple[str, Any]] = [
        ("id", record.id),
        ("name", record.name),
        (
            "experiment",
            f"{experiment} ({record.experiment_id})" if experiment else record.experiment_id,
        ),
        ("status", str(record.status)),
        ("start", fmt_time(record.start_time)),
        ("end", fmt_time(record.end_time)),
        ("duration", fmt_duration(record.start_time, record.end_time)),
    ]
    if record.parent_id:
        attributes.append(("parent", record.parent_id))
    if record.error:
        lines = [line for line in record.error.strip().splitlines() if line.strip()]
        attributes.append(("error", lines[-1] if lines else record.error))
    print_kv(f"Run {record.id}", attributes, spaced=False)
    print_kv("Params", sorted(record.params.items()))
    print_kv("Metrics (latest)", sorted(record.metrics.items()))
    print_kv("Tags", sorted(record.tags.items()))
    if artifacts:
        print_table(
            ["path", "size"], [(a.path, a.size) for a in artifacts], title="Artifacts", spaced=True
        )
    git = summary["git"]
    where: list[tuple[str, Any]] = []
    if git:
        where += [
            ("git commit", git["commit"]),
            ("git branch", git["branch"]),
            ("git dirty", git["dirty"]),
        ]
    command = summary["command"]
    where += [
        ("python", summary["python"]),
        ("platform", summary["platform"]),
        ("host", summary["host"]),
        ("command", " ".join(map(str, command)) if isinstance(command, list) else command),
        ("cwd", summary["cwd"]),
    ]
    print_kv("Context", [(k, v) for k, v in where if v is not None])


# -- runs compare ---------------------------------------------------------------------
_MISSING: Any = object()


def _same(values: Sequence[Any]) -> bool:
    def key(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return "NaN"
        return v

    first = values[0]
    return all(
        v is not _MISSING and first is not _MISSING and key(v) == key(first) for v in values[1:]
    )


@runs_group.command("compare")
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN_ID RUN_ID [RUN_ID]...")
@click.option("--diff-only", is_flag=True, help="Show only the params and metrics that differ.")
@json_option
def runs_compare(run_ids: tuple[str, ...], diff_only: bool, as_json: bool) -> None:
    """Compare the params and metrics of two or more runs side by side.

    Keys are sorted, params first. Rows that differ between the runs are marked with '*'. Run ids may be
    unique prefixes of at least 4 characters.
    """
    if len(run_ids) < 2:
        raise click.UsageError("runs compare needs at least two run ids")
    ws = get_workspace()
    records = [resolve_run(ws, ref).record for ref in run_ids]
    rows: list[dict[str, Any]] = []
    for kind, attr in (("param", "params"), ("metric", "metrics")):
        keys = sorted({k for record in records for k in getattr(record, attr)})
        for key in keys:
            values = [getattr(r, attr).get(key, _MISSING) for r in records]
            rows.append(
                {
                    "key": f"{attr}.{key}",
                    "kind": kind,
                    "name": key,
                    "values": values,
                    "differs": not _same(values),
                }
            )
    if diff_only:
        rows = [row for row in rows if row["differs"]]
    for row in rows:
        row["values"] = [None if v is _MISSING else v for v in row["values"]]
    names = experiment_names(ws)
    if as_json:
        echo_json(
            {
                "runs": [
                    {
                        "id": r.id,
                        "name": r.name,
                        "experiment_id": r.experiment_id,
                        "experiment": names.get(r.experiment_id),
                        "status": str(r.status),
                    }
                    for r in records
                ],
                "rows": rows,
            }
        )
        return
    headers = ["", "key", *(f"{r.id[:SHORT_ID]} {r.name}" for r in records)]
    table = [["*" if row["differs"] else "", row["key"], *row["values"]] for row in rows]
    differing = sum(1 for row in rows if row["differs"])
    print_table(
        headers,
        table,
        caption=f"{differing} of {len(rows)} rows differ (marked *)",
        no_wrap={"", "key"},
    )
