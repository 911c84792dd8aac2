"""The ``ray`` plugin: the ``ray://`` compute scheme.

Loaded through the ``mlops_sdk`` entry point group. Ray is not imported here:
the backend is registered by import path and imported on first use.
"""

from __future__ import annotations

from mlops_sdk.hookspecs import hookimpl
from mlops_sdk.plugins import Registrar


@hookimpl
def mlops_register_backends(register: Registrar) -> None:
    register.compute(
        "ray",
        "mlops_sdk_ray.compute:RayCompute",
        requires="mlops-sdk-ray",
        description="jobs as Ray tasks: ray://local, ray://auto, ray://HOST:PORT (Ray Client)",
    )
