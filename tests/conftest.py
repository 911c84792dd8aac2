"""Shared fixtures: a fresh workspace per test, only built-in plugins, no runs left active."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

import mlops_sdk as mlops
from mlops_sdk.plugins import reset_plugin_manager

if TYPE_CHECKING:
    from mlops_sdk.testing.postgres import PostgresServer

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


# -- PostgreSQL: one throwaway server per test session (per xdist worker) -------------------
@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for this session (each xdist worker has its own).

    Skips the test when PostgreSQL's programs are missing, except on CI (``CI`` set),
    where a missing server is a failure: CI must never silently skip these tests.
    """
    from mlops_sdk.testing.postgres import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer.start(tmp_path_factory.mktemp("postgres"))
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required on CI: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server (``postgresql://mlops@127.0.0.1:PORT/NAME``)."""
    if not postgres_server.running:  # a test that stopped the server must not break the next one
        postgres_server.start_again()
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    yield url
    if not postgres_server.running:
        postgres_server.start_again()
    # DROP … WITH (FORCE) disconnects leaked connections; should it still fail, the
    # session's close() removes the whole cluster anyway
    with contextlib.suppress(Exception):
        postgres_server.drop_database(name)
