"""The ``azure`` plugin: Blob/ADLS storage and Azure ML compute and deployments.

Loaded through the ``mlops_sdk`` entry point group. Every backend is registered
by import path, so neither the Azure SDK nor adlfs is imported until a
workspace actually opens an ``az://``, ``abfs://`` or ``azureml://`` URI.
"""

from __future__ import annotations

from mlops_sdk.hookspecs import hookimpl
from mlops_sdk.plugins import Registrar


@hookimpl
def mlops_register_backends(register: Registrar) -> None:
    register.storage(
        "az",
        "mlops_sdk_azure.storage:open_azure_storage",
        requires="mlops-sdk-azure",
        description="Azure Blob Storage / ADLS Gen2 container (az://container/prefix), through adlfs",
    )
    register.storage(
        "abfs",
        "mlops_sdk_azure.storage:open_azure_storage",
        requires="mlops-sdk-azure",
        description="ADLS Gen2 / Blob container (abfs://container/prefix or abfs://container@account.dfs.core.windows.net/prefix)",
    )
    register.storage(
        "abfss",
        "mlops_sdk_azure.storage:open_azure_storage",
        requires="mlops-sdk-azure",
        description="the same as abfs:// (the TLS spelling Spark uses); requests always go over https unless an endpoint says otherwise",
    )
    register.compute(
        "azureml",
        "mlops_sdk_azure.azureml_compute:AzureMLCompute",
        requires="mlops-sdk-azure[ml]",
        description="Azure ML command jobs (azureml://subscription/resource-group/workspace)",
    )
    register.deployer(
        "azureml",
        "mlops_sdk_azure.azureml_deployer:AzureMLDeployer",
        requires="mlops-sdk-azure[ml]",
        description="Azure ML managed online endpoints with blue/green traffic (azureml://subscription/resource-group/workspace)",
    )
