"""The built-in plugin: local backends and the standard run-context providers.

Registered through the ``mlops_sdk`` entry point group like any third-party
plugin. Factories are import paths, so listing them imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

from mlops_sdk.hookspecs import hookimpl
from mlops_sdk.plugins import Registrar


@hookimpl
def mlops_register_backends(register: Registrar) -> None:
    register.tracking(
        "sqlite",
        "mlops_sdk.tracking.sql:open_sqlite",
        description="SQLite file (WAL, many processes); sqlite:///relative.db or sqlite:////abs.db",
    )
    register.tracking(
        "postgresql",
        "mlops_sdk.tracking.sql:open_postgres",
        requires="mlops-sdk[postgres]",
        description="PostgreSQL server (team scale); postgresql://user[:password]@host[:port]/database",
    )
    register.storage("file", "mlops_sdk.storage.fsspec_storage:open_local", description="local folder")
    register.storage(
        "memory", "mlops_sdk.storage.fsspec_storage:open_memory", description="in-process memory (tests)"
    )
    register.compute("local", "mlops_sdk.compute.local:LocalCompute", description="a subprocess per job")
    register.deployer(
        "local",
        "mlops_sdk.deploy.local:LocalDeployer",
        description="model servers as local processes behind a stable 127.0.0.1 port",
    )
    register.deployer(
        "kubernetes",
        "mlops_sdk.deploy.kubernetes:KubernetesDeployer",
        requires="kubernetes",
        description="Deployment + Service (+ HPA) manifests for a model server image; kubernetes://NAMESPACE",
    )
    register.flavor(
        "sklearn",
        "mlops_sdk.flavors.sklearn:SklearnFlavor",
        requires="scikit-learn skops",
        description="scikit-learn estimators and pipelines, saved with skops (pickle only on opt-in)",
    )
    register.flavor(
        "torch",
        "mlops_sdk.flavors.torch:TorchFlavor",
        requires="torch safetensors",
        description="torch.nn.Module, saved as a torch.export program (+ safetensors weights)",
    )
    register.flavor(
        "pyfunc",
        "mlops_sdk.flavors.pyfunc:PyfuncFlavor",
        description="functions and classes by import reference; other objects with predict() by pickle opt-in",
    )


@hookimpl
def mlops_run_context(experiment_name: str, run_name: str) -> dict[str, Any]:
    from mlops_sdk import context

    sections: dict[str, Any] = {
        "python": context.python_context(),
        "platform": context.platform_context(),
        "command": context.command_context(),
        "env": context.env_context(),
        "packages": context.packages(),
    }
    git = context.git_context()
    if git is not None:
        sections["git"] = git
    return sections
