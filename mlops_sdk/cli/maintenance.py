"""``mlops gc`` and ``mlops verify``: keep the store small and sound.

``gc`` removes stored objects that no run, dataset version or model version
refers to, once they are older than a grace period (so an add still running
elsewhere keeps its objects). ``verify`` re-hashes every object and looks for
referenced objects that are missing; it exits 1 when it finds any problem.
"""

from __future__ import annotations

from typing import Any

import click

from mlops_sdk.cli.data import fmt_size
from mlops_sdk.cli.output import echo_json, json_option, print_table
from mlops_sdk.cli.state import get_workspace

DEFAULT_GRACE = 3600.0  # the same as mlops_sdk.maintenance.DEFAULT_GRACE (a test keeps them equal)


@click.command("gc")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE,
    show_default=True,
    metavar="SECONDS",
    help="Keep unreferenced objects younger than this (0: remove them all).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@json_option
def gc_cmd(grace: float, dry_run: bool, as_json: bool) -> None:
    """Remove stored objects that nothing refers to any more.

    Objects of every run artifact and every dataset or model version are
    kept. Unreferenced objects written less than --grace seconds ago are kept
    too: another process may be adding them right now.

    \b
    mlops gc --dry-run
    """
    from mlops_sdk.maintenance import gc

    result = gc(get_workspace(), grace=grace, dry_run=dry_run)
    if as_json:
        echo_json(
            {
                "removed": result.removed,
                "removed_bytes": result.removed_bytes,
                "kept": result.kept,
                "young": result.young,
                "grace": grace,
                "dry_run": result.dry_run,
            }
        )
        return
    verb = "would remove" if result.dry_run else "removed"
    click.echo(
        f"{verb} {result.removed} unreferenced object(s) ({fmt_size(result.removed_bytes)}); "
        f"kept {result.kept} referenced"
    )
    if result.young:
        click.echo(
            f"left {result.young} unreferenced object(s) younger than {grace:g}s "
            "(lower --grace to remove them)"
        )


@click.command("verify")
@json_option
def verify_cmd(as_json: bool) -> None:
    """Re-hash every stored object; find referenced objects that are missing.

    Lists each problem (corrupted or missing, the object key, and which file
    or version it concerns) and exits 1 when there is any.
    """
    from mlops_sdk.maintenance import verify

    result = verify(get_workspace())
    problems: list[dict[str, Any]] = [
        {"kind": p.kind, "key": p.key, "detail": p.detail} for p in result.problems
    ]
    if as_json:
        echo_json({"ok": result.ok, "checked": result.checked, "problems": problems})
    elif problems:
        print_table(
            ["problem", "key", "detail"],
            [(p["kind"], p["key"], p["detail"]) for p in problems],
            no_wrap={"problem"},
        )
    else:
        click.echo(f"ok: {result.checked} object(s) checked, no problems")
    if problems:
        click.echo(
            f"error: {len(problems)} problem(s) found in {result.checked} object(s) checked",
            err=True,
        )
        click.get_current_context().exit(1)
