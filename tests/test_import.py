"""``import mlops_sdk`` stays light (DESIGN.md §5): heavy libraries load only when used."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = ("torch", "sklearn", "dvc", "boto3", "botocore", "azure", "ray", "pandas", "mlflow")
NOT_AT_IMPORT = (*HEAVY, "numpy", "sqlalchemy", "rich", "click")


def _loaded_after(code: str, cwd: Path) -> set[str]:
    """Top-level package names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json, sys
        print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_loads_no_heavy_or_backend_library(tmp_path: Path) -> None:
    loaded = _loaded_after("import mlops_sdk", tmp_path)
    assert "mlops_sdk" in loaded
    assert not loaded & set(NOT_AT_IMPORT), sorted(loaded & set(NOT_AT_IMPORT))


def test_public_names_resolve_without_heavy_libraries(tmp_path: Path) -> None:
    loaded = _loaded_after(
        """
        import mlops_sdk as mlops
        mlops.Workspace, mlops.Experiment, mlops.Run, mlops.Job, mlops.RunStatus, mlops.errors
        """,
        tmp_path,
    )
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_tracking_a_run_loads_no_heavy_library(tmp_path: Path) -> None:
    """Logging params, metrics and a file needs SQLite and the local store, nothing more."""
    (tmp_path / "a.txt").write_text("x")
    loaded = _loaded_after(
        """
        import mlops_sdk as mlops
        ws = mlops.Workspace.open(".")
        with ws.experiment("e").start_run(params={"n": 1}) as run:
            run.log_metric("m", 1.0)
            run.log_artifact("a.txt")
        ws.runs("metrics.m > 0")
        """,
        tmp_path,
    )
    assert "sqlalchemy" in loaded  # it did do the work
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_listing_plugins_imports_no_backend(tmp_path: Path) -> None:
    """The registry holds import paths: building it imports no backend module."""
    loaded = _loaded_after(
        """
        import sys
        from mlops_sdk.plugins import get_plugin_manager
        get_plugin_manager().registry
        assert "mlops_sdk.tracking.sql" not in sys.modules
        assert "mlops_sdk.storage.fsspec_storage" not in sys.modules
        """,
        tmp_path,
    )
    assert "sqlalchemy" not in loaded and "fsspec" not in loaded
