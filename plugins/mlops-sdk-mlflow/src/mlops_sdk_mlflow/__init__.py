"""MLflow interoperability for mlops-sdk.

* ``tracking = "mlflow+http://host:5000"`` keeps experiments and runs on an
  MLflow tracking server (:mod:`mlops_sdk_mlflow.tracking`).
* ``mlops import-mlflow URI`` copies an MLflow store into a workspace
  (:func:`mlops_sdk_mlflow.importer.import_mlflow`).

Nothing here imports MLflow until a backend or the importer is used.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "import_mlflow"]


def __getattr__(name: str) -> Any:
    if name == "import_mlflow":  # imported on first use: the plugin module must stay light
        from mlops_sdk_mlflow.importer import import_mlflow

        return import_mlflow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
