"""Ray compute for mlops-sdk.

``compute = "ray://local"`` runs ``ws.submit`` jobs (and sweep trials) as Ray
tasks on a Ray instance started in this process; ``ray://auto`` joins the Ray
cluster started on this machine with ``ray start``; ``ray://HOST:PORT`` connects
to a remote cluster through Ray Client. See :mod:`mlops_sdk_ray.compute`.

Nothing here imports Ray until the backend is used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
