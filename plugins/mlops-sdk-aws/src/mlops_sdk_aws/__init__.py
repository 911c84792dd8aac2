"""AWS for mlops-sdk: SageMaker training jobs and SageMaker endpoints.

* compute ``sagemaker://REGION?role=...&bucket=s3://...&image=...`` runs
  ``ws.submit`` jobs as SageMaker training jobs (:mod:`mlops_sdk_aws.compute`);
* deployer ``sagemaker://REGION?...`` serves registered model versions on
  SageMaker endpoints (:mod:`mlops_sdk_aws.deployer`).

Bytes (job specs, results, model bundles) move through the ``s3://`` storage
of mlops-sdk-s3. Nothing here imports boto3 until a backend is used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
