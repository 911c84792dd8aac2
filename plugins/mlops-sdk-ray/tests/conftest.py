"""Fixtures: one real local Ray instance per test session, and only this plugin loaded.

Ray is started once (per pytest process, so once per xdist worker) through the
backend itself (``ray://local?num_cpus=2``: two CPUs, a small object store, no
dashboard) and shut down at the end of the session. Tests are skipped, with
the reason, when Ray is not installed (``pip install 'mlops-sdk-ray[test]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlops_sdk.plugins import reset_plugin_manager

RAY_CPUS = 2
RAY_URI = f"ray://local?num_cpus={RAY_CPUS}&num_gpus=0&object_store_memory=100000000"


@pytest.fixture(autouse=True)
def _this_plugin_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Load the built-ins and this plugin (through its entry point), nothing else installed."""
    monkeypatch.setenv("MLOPS_PLUGINS", "ray")
    for key in ("TRACKING", "STORAGE", "COMPUTE", "DEPLOY", "FLUSH_INTERVAL"):
        monkeypatch.delenv(f"MLOPS_{key}", raising=False)
    reset_plugin_manager()
    yield
    from mlops_sdk.fluent import set_workspace
    from mlops_sdk.run import active_runs

    for run in reversed(active_runs()):
        run.end("KILLED")
    set_workspace(None)
    reset_plugin_manager()


@pytest.fixture(scope="session")
def ray_instance() -> Iterator[Any]:
    """A local Ray instance with 2 CPUs for the whole session; the backend that started it."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'mlops-sdk-ray[test]'")
    from mlops_sdk_ray.compute import RayCompute

    backend = RayCompute(RAY_URI, root=".")
    backend.connect()
    try:
        yield backend
    finally:
        backend.shutdown()


@pytest.fixture
def workspace(tmp_path: Path, ray_instance: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh workspace whose compute is the session's local Ray instance."""
    import mlops_sdk as mlops

    monkeypatch.chdir(tmp_path)
    ws = mlops.Workspace.open(tmp_path, compute="ray://local")
    try:
        yield ws
    finally:
        ws.close()
