"""The ``mlflow`` plugin: MLflow tracking URIs and the ``mlops import-mlflow`` command.

Loaded through the ``mlops_sdk`` entry point group. Nothing heavy is imported
here: the tracking store is registered by import path, and MLflow is imported
only inside the backend module and the command's function.
"""

from __future__ import annotations

from typing import Any

from mlops_sdk.hookspecs import hookimpl
from mlops_sdk.plugins import Registrar

from mlops_sdk_mlflow.uris import SCHEMES


@hookimpl
def mlops_register_backends(register: Registrar) -> None:
    for scheme, description in SCHEMES.items():
        register.tracking(scheme, "mlops_sdk_mlflow.tracking:open_mlflow", description=description)


@hookimpl
def mlops_register_commands(cli: Any) -> None:
    from mlops_sdk_mlflow.cli import import_mlflow_command

    cli.add_command(import_mlflow_command)
