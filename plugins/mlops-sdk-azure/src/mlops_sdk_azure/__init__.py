"""Azure backends for mlops-sdk.

* storage ``az://container/prefix`` and ``abfs://container/prefix``: Azure Blob
  Storage and ADLS Gen2 through adlfs (:mod:`mlops_sdk_azure.storage`);
* compute and deployer ``azureml://subscription/resource-group/workspace``:
  Azure ML command jobs and managed online endpoints (the ``ml`` extra).

Nothing is imported here: the plugin registers each backend by import path, so
``import mlops_sdk`` and ``mlops plugins`` stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
