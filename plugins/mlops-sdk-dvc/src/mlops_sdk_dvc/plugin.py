"""The ``dvc`` plugin: the ``dvc://`` storage and the ``dvc`` dataset source.

Loaded through the ``mlops_sdk`` entry point group. Nothing heavy is imported
here: both backends are registered by import path, and DVC itself is imported
only when a dataset is added or read.
"""

from __future__ import annotations

from mlops_sdk.hookspecs import hookimpl
from mlops_sdk.plugins import Registrar


@hookimpl
def mlops_register_backends(register: Registrar) -> None:
    register.storage(
        "dvc",
        "mlops_sdk_dvc.storage:open_dvc_storage",
        requires="mlops-sdk-dvc",
        description="DVC project in a Git repository; datasets are DVC-tracked folders (dvc://. or dvc:///abs/repo)",
    )
    register.source(
        "dvc",
        "mlops_sdk_dvc.source:DvcSource",
        requires="mlops-sdk-dvc",
        description="data tracked by DVC in any Git repository (local path or URL), read at a pinned commit",
    )
