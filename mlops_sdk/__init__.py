"""mlops-sdk: experiment tracking, data versioning, model registry, deployment and monitoring.

>>> import mlops_sdk as mlops
>>> ws = mlops.Workspace.open()                                   # doctest: +SKIP
>>> with ws.experiment("churn").start_run(params={"n": 100}) as run:  # doctest: +SKIP
...     run.log_metric("loss", 0.31, step=10)

Only the names in DESIGN.md's public API live here; heavy libraries (torch,
scikit-learn, DVC, cloud SDKs) load when a feature that needs them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_sdk import errors
from mlops_sdk.fluent import (
    active_run,
    end_run,
    log_artifact,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_tag,
    set_tags,
    start_run,
)
from mlops_sdk.records import RunStatus

if TYPE_CHECKING:
    from mlops_sdk import monitor
    from mlops_sdk.dataset import Dataset, DatasetVersion
    from mlops_sdk.deployment import Deployment
    from mlops_sdk.experiment import Experiment
    from mlops_sdk.job import Job
    from mlops_sdk.model import Model, ModelVersion
    from mlops_sdk.pipeline import Pipeline
    from mlops_sdk.run import Run
    from mlops_sdk.seed import seed_everything
    from mlops_sdk.steps import step
    from mlops_sdk.workspace import Workspace

__version__ = "0.1.0"

_LAZY = {
    "Workspace": "mlops_sdk.workspace",
    "Experiment": "mlops_sdk.experiment",
    "Run": "mlops_sdk.run",
    "Job": "mlops_sdk.job",
    "Dataset": "mlops_sdk.dataset",
    "DatasetVersion": "mlops_sdk.dataset",
    "Deployment": "mlops_sdk.deployment",
    "Model": "mlops_sdk.model",
    "ModelVersion": "mlops_sdk.model",
    "Pipeline": "mlops_sdk.pipeline",
    "step": "mlops_sdk.steps",
    "seed_everything": "mlops_sdk.seed",
}


# Submodules loaded on first attribute access (``mlops.monitor.data_drift(...)``).
_LAZY_MODULES = {"monitor": "mlops_sdk.monitor"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        import importlib

        module = importlib.import_module(_LAZY_MODULES[name])
        globals()[name] = module
        return module
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'mlops_sdk' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


__all__ = [
    "Dataset",
    "DatasetVersion",
    "Deployment",
    "Experiment",
    "Job",
    "Model",
    "ModelVersion",
    "Pipeline",
    "Run",
    "RunStatus",
    "Workspace",
    "__version__",
    "active_run",
    "end_run",
    "errors",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "monitor",
    "seed_everything",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
]
