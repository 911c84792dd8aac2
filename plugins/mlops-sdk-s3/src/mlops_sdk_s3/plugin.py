"""The ``s3`` plugin: the ``s3://`` storage.

Loaded through the ``mlops_sdk`` entry point group. Nothing heavy is imported
here: the storage is registered by import path, and s3fs/boto3 are imported
only when an ``s3://`` storage is opened.
"""

from __future__ import annotations

from mlops_sdk.hookspecs import hookimpl
from mlops_sdk.plugins import Registrar


@hookimpl
def mlops_register_backends(register: Registrar) -> None:
    register.storage(
        "s3",
        "mlops_sdk_s3.storage:open_s3_storage",
        requires="mlops-sdk-s3",
        description="Amazon S3 or any S3-compatible service (s3://bucket/prefix?endpoint_url=...&region=...)",
    )
