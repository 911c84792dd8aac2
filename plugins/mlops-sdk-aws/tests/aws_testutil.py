"""Shared by the SageMaker tests (a module of its own: several plugins' ``conftest`` modules share one name)."""

from __future__ import annotations

from typing import Any

from mlops_sdk.testing.cloud_servers import MotoServer

ROLE = "arn:aws:iam::123456789012:role/mlops-sagemaker"


IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serve:1"


def aws(service: str) -> Any:
    """A boto3 client for the moto server (to look behind the plugin's back)."""
    import boto3

    return boto3.client(service, region_name=MotoServer.REGION)
