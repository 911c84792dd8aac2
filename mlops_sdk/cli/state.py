"""What the ``mlops`` group passes to its commands: the workspace options, opened on demand.

Commands that need no workspace (``mlops plugins``, ``--help``) never open
one, so a broken configuration does not stop them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mlops_sdk.workspace import Workspace


class CliState:
    """Global options of the ``mlops`` group and the workspace they open."""

    def __init__(self, path: str | None, tracking: str | None, storage: str | None) -> None:
        self.path = path
        self.tracking = tracking
        self.storage = storage
        self._workspace: Workspace | None = None

    def workspace(self) -> Workspace:
        """Open the workspace on first use; it is closed when the command ends."""
        if self._workspace is None:
            from mlops_sdk.workspace import Workspace

            self._workspace = Workspace.open(
                self.path, tracking=self.tracking, storage=self.storage
            )
            click.get_current_context().find_root().call_on_close(self.close)
        return self._workspace

    def close(self) -> None:
        if self._workspace is not None:
            ws, self._workspace = self._workspace, None
            ws.close()


def get_state() -> CliState:
    """The :class:`CliState` of the running command (a default one outside the group)."""
    ctx = click.get_current_context()
    state = ctx.find_object(CliState)
    if state is None:
        state = CliState(None, None, None)
        ctx.find_root().obj = state
    return state


def get_workspace() -> Workspace:
    """The workspace named by the global options of the running command."""
    return get_state().workspace()
