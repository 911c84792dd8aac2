"""Every extension point of mlops-sdk, documented.

Plugins implement these hooks with :data:`hookimpl` and are found through the
``mlops_sdk`` entry point group (``MLOPS_PLUGINS`` restricts which load). The
built-in local backends are a plugin like any other (``mlops_sdk.builtin``).

A minimal plugin module::

    from mlops_sdk.hookspecs import hookimpl

    @hookimpl
    def mlops_register_backends(register):
        register.storage("s3", "mlops_sdk_s3.storage:S3Storage", requires="mlops-sdk-s3")

The plugin author's guide (``docs/plugins.md``) is written from these docstrings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from mlops_sdk.monitor.alerts import Alert
    from mlops_sdk.plugins import Registrar
    from mlops_sdk.records import RunRecord
    from mlops_sdk.run import Run

PROJECT = "mlops_sdk"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class BackendSpecs:
    """Hooks that provide backends."""

    @hookspec
    def mlops_register_backends(self, register: Registrar) -> None:
        """Register backend factories by URI scheme.

        Called once per process, the first time a backend is looked up or
        ``mlops plugins`` runs. Call ``register.tracking(scheme, factory)``,
        ``register.storage(...)``, ``register.compute(...)`` or
        ``register.deployer(...)`` once per scheme the plugin provides.

        ``factory`` is either a callable or an import path ``"module:attr"``
        (preferred: it is imported only when a workspace uses the scheme, so
        listing plugins stays cheap). It is called as
        ``factory(uri, root=workspace_root)`` and must return an object
        implementing the interface of its kind (``mlops_sdk.tracking.base``,
        ``mlops_sdk.storage.base``, ``mlops_sdk.compute.base``,
        ``mlops_sdk.deploy.base``).

        Pass ``requires="package-name"`` so that a missing optional dependency
        is reported as "pip install package-name". Registering a scheme that is
        already taken is an error unless ``clobber=True``.

        Returns nothing.
        """


class RunSpecs:
    """Hooks around the lifecycle of a run."""

    @hookspec
    def mlops_run_context(self, experiment_name: str, run_name: str) -> dict[str, Any] | None:
        """Contribute to what a run records about where it ran.

        Called once when a run starts, before it is stored. Return a dict of
        JSON-serialisable sections (``{"git": {...}}``) to merge into the run's
        ``context``, or ``None`` to add nothing. Later plugins win on equal
        section names. Values of secret-looking names (``*TOKEN*``, ``*KEY*``,
        ``*PASSWORD*``, ``*SECRET*``) are redacted before anything is stored.

        The built-in providers record git (commit, branch, dirty diff), Python
        and platform, installed packages, the command line and the host.
        """

    @hookspec
    def mlops_after_run_start(self, run: Run) -> None:
        """Called right after a run has been created and stored.

        ``run`` is the live :class:`mlops_sdk.run.Run`; a plugin may log to it
        (tags, params). Exceptions propagate to the code that started the run.
        Returns nothing.
        """

    @hookspec
    def mlops_after_run_end(self, record: RunRecord) -> None:
        """Called after a run has ended and every pending write was flushed.

        ``record`` is the final :class:`mlops_sdk.records.RunRecord`: its
        status is FINISHED, FAILED or KILLED and ``record.error`` holds the
        error of a failed run. Use it to notify (chat, CI) or to export.
        Exceptions here are reported as :class:`mlops_sdk.errors.PluginError`
        after the run is safely stored. Returns nothing.
        """


class CliSpecs:
    """Hooks that extend the ``mlops`` command."""

    @hookspec
    def mlops_register_commands(self, cli: Any) -> None:
        """Add commands to the ``mlops`` command line.

        Called once each time the ``mlops`` command starts, before it parses its
        arguments. ``cli`` is the top-level ``click.Group``: call
        ``cli.add_command(command)`` with a ``click.Command`` or
        ``click.Group``. A name that is already taken is a ``PluginError``.
        Import heavy libraries inside the command's function, not at module
        level, so ``mlops --help`` stays fast. Returns nothing.
        """


class MonitorSpecs:
    """Hooks of monitoring (``mlops_sdk.monitor``)."""

    @hookspec
    def mlops_alert(self, alert: Alert) -> None:
        """Deliver one monitoring alert (a pager, a chat channel, a ticket).

        Called once per alert by ``mlops_sdk.monitor.monitor(...)``, by a
        deployment's ``monitor()``, by ``report.deliver()`` and by the
        ``mlops monitor`` command, after the built-in sinks named by
        ``sinks=`` (``"log"``, ``"webhook:https://…"``) got it. ``alert`` is
        an :class:`mlops_sdk.monitor.Alert`: ``kind`` (``drift``,
        ``performance`` or ``bias``), ``subject`` (a column, a metric or a
        sensitive attribute), ``message``, ``value`` and ``threshold``;
        ``alert.to_dict()`` is JSON-ready. An exception here is raised as
        :class:`mlops_sdk.errors.PluginError` naming the plugin, after every
        other sink was tried. Returns nothing.
        """


SPEC_CLASSES = (BackendSpecs, RunSpecs, CliSpecs, MonitorSpecs)
