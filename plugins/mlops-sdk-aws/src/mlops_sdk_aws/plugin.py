"""The ``aws`` plugin: the ``sagemaker://`` compute and deployer schemes.

Loaded through the ``mlops_sdk`` entry point group. boto3 is not imported
here: the backends are registered by import path and imported on first use.
"""

from __future__ import annotations

from mlops_sdk.hookspecs import hookimpl
from mlops_sdk.plugins import Registrar


@hookimpl
def mlops_register_backends(register: Registrar) -> None:
    register.compute(
        "sagemaker",
        "mlops_sdk_aws.compute:SageMakerCompute",
        requires="mlops-sdk-aws",
        description="jobs as SageMaker training jobs: sagemaker://REGION?role=ARN&bucket=s3://B/P&image=IMG",
    )
    register.deployer(
        "sagemaker",
        "mlops_sdk_aws.deployer:SageMakerDeployer",
        requires="mlops-sdk-aws",
        description="SageMaker endpoints: sagemaker://REGION?role=ARN&bucket=s3://B/P&image=IMG",
    )
