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


# -- runs reproduce -------------------------------------------------------------------
def _dataset_option(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"expected NAME=PATH, got {value!r}", param_hint="--dataset")
        out[name] = path
    return out


@runs_group.command("reproduce")
@click.argument("run_id")
@click.option("--dry-run", is_flag=True, help="Check the record and print the plan; run nothing.")
@click.option("--keep", is_flag=True, help="Keep the temporary git worktree (its path is printed).")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=1e-6,
    show_default=True,
    metavar="REL",
    help="Relative difference a metric may have and still match.",
)
@click.option(
    "--abs-tolerance",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="ABS",
    help="Absolute difference a metric may have and still match.",
)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS", help="Stop the command after this long.")
@click.option("--allow-dirty", is_flag=True, help="Run the clean commit when the run's uncommitted diff was not captured.")
@click.option("--repo", type=click.Path(exists=True, file_okay=False), metavar="PATH", help="Git repository holding the commit (default: the one recorded).")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="NAME=PATH",
    help="Restore dataset NAME into PATH, relative to the worktree root (default .mlops-datasets/NAME; repeatable).",
)
@json_option
def runs_reproduce(
    run_id: str,
    dry_run: bool,
    keep: bool,
    tolerance: float,
    abs_tolerance: float,
    timeout: float | None,
    allow_dirty: bool,
    repo: str | None,
    datasets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Re-execute a run from its record and compare metrics with the original.

    Checks out the recorded git commit in a temporary worktree (applying the
    recorded uncommitted diff), restores the dataset versions the run used,
    runs the recorded command there with this Python, and compares the new
    run's metrics with the original's. Exit code 0 when every metric matches,
    1 when one differs or the run cannot be reproduced. RUN_ID may be a unique
    prefix of at least 4 characters.

    \b
    mlops runs reproduce 3f2a9c1d --dry-run
    mlops runs reproduce 3f2a9c1d --tolerance 1e-4 --json
    """
    from mlops_sdk.reproduce import reproduce

    ws = get_workspace()
    run = resolve_run(ws, run_id)
    mapping = _dataset_option(datasets)
    if not as_json:
        from mlops_sdk.reproduce import plan

        _print_plan(plan(ws, run.id, allow_dirty=allow_dirty, repo=repo, datasets=mapping).to_dict())
        if not dry_run:
            note("")
            note("running the command…")
    result = reproduce(
        ws,
        run.id,
        dry_run=dry_run,
        keep=keep,
        timeout=timeout,
        allow_dirty=allow_dirty,
        tolerance=tolerance,
        abs_tolerance=abs_tolerance,
        repo=repo,
        datasets=mapping,
        on_output=None if as_json else (lambda line: note(f"  | {line}")),
    )
    if as_json:
        echo_json(result.to_dict())
    elif not dry_run:
        _print_comparison(result)
    if not dry_run and not result.matched:
        click.get_current_context().exit(1)


def _print_plan(data: Mapping[str, Any]) -> None:
    items: list[tuple[str, Any]] = [
        ("run", f"{data['run_id']} ({data['run_name']})"),
        ("repository", data["repo"]),
        ("commit", data["commit"] + (f" ({data['branch']})" if data.get("branch") else "")),
    ]
    if data["dirty"]:
        items.append(("uncommitted changes", "apply the recorded diff" if data["apply_diff"] else "ignored (--allow-dirty)"))
    items.append(("working folder", data["cwd"]))
    items.append(("command", " ".join(data["command"])))
    for ds in data["datasets"]:
        items.append((f"dataset {ds['name']}", f"v{ds['version']} -> {{worktree}}/{ds['path']}"))
    for key, value in sorted(data["env"].items()):
        items.append((f"env {key}", value))
    print_kv("Reproduction plan", items, spaced=False)
    for warning in data["warnings"]:
        note(f"warning: {warning}")


def _print_comparison(result: Any) -> None:
    if result.worktree:
        note(f"worktree kept at {result.worktree}")
    rows = [
        ["" if row.matched else "*", row.key, row.original, row.new, row.abs_diff, row.rel_diff]
        for row in result.metrics
    ]
    differing = sum(1 for row in result.metrics if not row.matched)
    if rows:
        print_table(
            ["", "metric", "original", "reproduced", "abs diff", "rel diff"],
            rows,
            title=f"Metrics: {result.original_run_id[:SHORT_ID]} vs {(result.new_run_id or '-')[:SHORT_ID]}",
            caption=f"{differing} of {len(rows)} metrics differ beyond rel {result.tolerance:g} (marked *)",
            spaced=True,
            no_wrap={"", "metric"},
        )
    for problem in result.problems:
        note(f"problem: {problem}")
    note(
        f"reproduced: run {result.new_run_id} matches run {result.original_run_id}"
        if result.matched
        else f"not reproduced: run {result.original_run_id}"
        + (f" vs {result.new_run_id}" if result.new_run_id else "")
    )
