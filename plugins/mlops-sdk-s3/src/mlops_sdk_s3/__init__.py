"""Amazon S3 (and S3-compatible services) for mlops-sdk.

``storage = "s3://bucket/prefix"`` keeps run artifacts, models and dataset
objects under ``prefix`` in ``bucket`` (:mod:`mlops_sdk_s3.storage`).
Credentials come from the standard AWS chain, never from the workspace.
Nothing here imports boto3 or s3fs until the storage is opened.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
