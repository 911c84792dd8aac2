"""Shared fixtures: a fresh workspace per test, only built-in plugins, no runs left active."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

import mlops_sdk as mlops
from mlops_sdk.plugins import reset_plugin_manager

# CI explores a fixed set of examples so a red build always reproduces; locally the
# examples are random, so every run searches a little further.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _builtin_plugins_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Load only the built-in plugins (not whatever is installed), afresh for each test."""
    monkeypatch.setenv("MLOPS_PLUGINS", "")
    # the developer's own settings must not leak in
    for key in ("TRACKING", "STORAGE", "COMPUTE", "DEPLOY", "FLUSH_INTERVAL"):
        monkeypatch.delenv(f"MLOPS_{key}", raising=False)
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture(autouse=True)
def _end_runs_left_active() -> Iterator[None]:
    """End any run a test left active, so it cannot leak into the next test."""
    yield
    from mlops_sdk.fluent import set_workspace
    from mlops_sdk.run import active_runs

    for run in reversed(active_runs()):
        run.end("KILLED")
    set_workspace(None)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[mlops.Workspace]:
    """A workspace under the test's tmp_path (SQLite + local files)."""
    ws = mlops.Workspace.open(tmp_path)
    yield ws
    from mlops_sdk.run import active_runs

    try:
        for run in reversed(active_runs()):  # end this workspace's runs while it is still open
            if run.workspace is ws:
                run.end("KILLED")
    finally:
        ws.close()
