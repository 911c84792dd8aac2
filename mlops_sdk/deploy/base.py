"""The deployer interface (implemented by the deployments work: local server, Kubernetes, clouds).

A deployer turns a registered model version into a running endpoint and
manages its life: start, health-check, move traffic, roll back, stop.

Contract:

* :meth:`deploy` returns only once the endpoint answers its health check, or
  raises and leaves nothing running.
* :meth:`update` starts the new version and health-checks it before moving
  traffic; if the new version fails, the old one keeps serving and the error
  is raised.
* :meth:`rollback` moves traffic back to the previous version.
* Every method raises :class:`mlops_sdk.errors.MlopsError` subclasses naming
  the deployment and the deployer.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import attrs


@attrs.frozen
class DeploymentInfo:
    """A deployment as the deployer reports it."""

    name: str
    model: str
    version: int
    url: str | None
    status: str
    previous_versions: tuple[int, ...] = ()
    #: the model alias the deployment follows (``update()`` with no version re-resolves it)
    alias: str | None = None
    #: deployer-specific facts (process ids, ports, log paths, history…)
    details: Mapping[str, Any] = attrs.field(factory=dict)


class Deployer(abc.ABC):
    """Serves model versions at a target (a local process, a cluster, a cloud endpoint)."""

    uri: str

    @abc.abstractmethod
    def deploy(self, name: str, model_uri: str, config: Mapping[str, Any] | None = None) -> DeploymentInfo:
        """Start serving ``model_uri`` (``models:/NAME/VERSION``) as deployment ``name``."""

    @abc.abstractmethod
    def update(self, name: str, model_uri: str) -> DeploymentInfo:
        """Serve a new version; traffic moves only after it is healthy."""

    @abc.abstractmethod
    def rollback(self, name: str) -> DeploymentInfo:
        """Serve the previous version again."""

    @abc.abstractmethod
    def predict(self, name: str, rows: Sequence[Any]) -> list[Any]:
        """Send rows to the deployment and return its predictions."""

    @abc.abstractmethod
    def status(self, name: str) -> DeploymentInfo:
        """Current state of a deployment; raise ``NotFound`` for an unknown name."""

    @abc.abstractmethod
    def list(self) -> list[DeploymentInfo]:
        """All deployments this deployer manages."""

    @abc.abstractmethod
    def logs(self, name: str, tail: int = 100) -> str:
        """The last lines of the deployment's log."""

    @abc.abstractmethod
    def stop(self, name: str) -> None:
        """Stop serving and release resources; stopping a stopped deployment is not an error."""
