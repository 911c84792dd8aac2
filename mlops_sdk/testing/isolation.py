"""Keep a plugin's tests independent of the developer's shell and of each other.

::

    @pytest.fixture(autouse=True)
    def _isolated(monkeypatch):
        with isolated(monkeypatch, plugins="s3"):
            yield
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["isolated"]

#: variables a test may inherit: which plugins load is set here, the emulator's path is the machine's
_KEEP = frozenset({"MLOPS_PLUGINS", "MLOPS_AZURITE"})


@contextlib.contextmanager
def isolated(monkeypatch: Any, *, plugins: str) -> Iterator[None]:
    """Only the built-ins and ``plugins`` (comma-separated) load; no ``MLOPS_*`` setting leaks in.

    Afterwards, runs a test left active are ended (KILLED) and the module-level
    workspace is forgotten, so the next test starts clean.
    """
    from mlops_sdk.plugins import reset_plugin_manager

    monkeypatch.setenv("MLOPS_PLUGINS", plugins)
    for key in list(os.environ):
        if key.startswith("MLOPS_") and key not in _KEEP:
            monkeypatch.delenv(key)
    reset_plugin_manager()
    try:
        yield
    finally:
        from mlops_sdk.fluent import set_workspace
        from mlops_sdk.run import active_runs

        for active in reversed(active_runs()):
            active.end("KILLED")
        set_workspace(None)
        reset_plugin_manager()
