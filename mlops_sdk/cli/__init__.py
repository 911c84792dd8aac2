"""The ``mlops`` command.

``main`` is the console-script entry point. Every command lives in its own
module; this one defines the group, its global options and error handling.
Exit codes: 0 success, 1 an error mlops-sdk reports (``error: <message>`` on
stderr), 2 a usage error (bad option or argument).

rich and the backends load only when a command needs them, so ``mlops --help``
stays fast.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from mlops_sdk import __version__
from mlops_sdk.cli.data import data_group
from mlops_sdk.cli.deploy import deploy_group
from mlops_sdk.cli.experiments import experiments_group
from mlops_sdk.cli.maintenance import gc_cmd, verify_cmd
from mlops_sdk.cli.models import models_group
from mlops_sdk.cli.monitor import monitor_cmd
from mlops_sdk.cli.pipeline import pipeline_group
from mlops_sdk.cli.plugins_cmd import plugins_cmd
from mlops_sdk.cli.runs import runs_group
from mlops_sdk.cli.serve import serve_cmd
from mlops_sdk.cli.state import CliState


def _one_line(message: str) -> str:
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


class MlopsGroup(click.Group):
    """A group that turns :class:`~mlops_sdk.errors.MlopsError` into ``error: …`` and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        from mlops_sdk.errors import MlopsError

        try:
            return super().invoke(ctx)
        except MlopsError as exc:
            click.echo(f"error: {_one_line(str(exc)) or type(exc).__name__}", err=True)
            ctx.exit(1)


@click.group(cls=MlopsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace",
    "-w",
    "workspace",
    type=click.Path(exists=True, file_okay=False, dir_okay=True),
    metavar="PATH",
    help="Workspace root (default: found from the current folder).",
)
@click.option(
    "--tracking",
    metavar="URI",
    help="Tracking store URI (overrides MLOPS_TRACKING and mlops.toml).",
)
@click.option(
    "--storage", metavar="URI", help="Storage URI (overrides MLOPS_STORAGE and mlops.toml)."
)
@click.version_option(
    __version__, "--version", "-V", prog_name="mlops-sdk", message="%(prog)s %(version)s"
)
@click.pass_context
def cli(
    ctx: click.Context, workspace: str | None, tracking: str | None, storage: str | None
) -> None:
    """Track, compare and inspect machine-learning runs.

    Every listing takes --json for scripts and CI. Exit codes: 0 success,
    1 error (message on stderr), 2 bad usage.
    """
    ctx.obj = CliState(workspace, tracking, storage)


cli.add_command(runs_group)
cli.add_command(experiments_group)
cli.add_command(models_group)
cli.add_command(plugins_cmd)
cli.add_command(data_group)
cli.add_command(gc_cmd)
cli.add_command(verify_cmd)
cli.add_command(pipeline_group)
cli.add_command(monitor_cmd)
cli.add_command(serve_cmd)
cli.add_command(deploy_group)


class _GuardedGroup:
    """What plugins see as ``cli``: ``add_command`` refuses to replace an existing command."""

    def __init__(self, group: click.Group, plugin: str) -> None:
        self._group = group
        self._plugin = plugin

    def add_command(self, command: click.Command, name: str | None = None) -> None:
        from mlops_sdk.errors import PluginError

        name = name or command.name
        if not name:
            raise PluginError(f'plugin "{self._plugin}" added a command without a name')
        if name in self._group.commands:
            raise PluginError(f'plugin "{self._plugin}" adds the command {name!r}, which already exists')
        self._group.add_command(command, name)


def add_plugin_commands(group: click.Group = cli) -> None:
    """Let every plugin add its commands to ``group`` (``mlops_register_commands``), once per group."""
    if getattr(group, "_mlops_plugin_commands_added", False):
        return
    from mlops_sdk.errors import PluginError
    from mlops_sdk.plugins import get_plugin_manager

    manager = get_plugin_manager()
    for impl in manager.pm.hook.mlops_register_commands.get_hookimpls():
        name = manager.pm.get_name(impl.plugin) or repr(impl.plugin)
        try:
            impl.function(cli=_GuardedGroup(group, name))
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f'plugin "{name}" failed in mlops_register_commands: {exc!r}') from exc
    group._mlops_plugin_commands_added = True  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``mlops`` console script."""
    from mlops_sdk.errors import MlopsError

    try:
        add_plugin_commands()
    except MlopsError as exc:
        click.echo(f"error: {_one_line(str(exc))}", err=True)
        sys.exit(1)
    try:
        cli.main(args=argv, prog_name="mlops")
    except BrokenPipeError:
        # The reader went away (``mlops runs ls | head``): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)


__all__ = ["add_plugin_commands", "cli", "main"]
