"""``Deployment``: a model version served at a target, and what happens to it afterwards.

>>> dep = ws.deploy(mv, name="churn-api", target="local")        # doctest: +SKIP
>>> dep.url; dep.status; dep.predict(X_new)                        # doctest: +SKIP
>>> dep.update(mv2); dep.rollback(); dep.stop()                    # doctest: +SKIP
>>> dep.monitor(reference=dsv).alerts                              # doctest: +SKIP

A deployment made from ``"churn-clf@production"`` follows that alias:
``dep.update()`` with no argument serves whatever the alias points at now.
The deployer (``local``, ``kubernetes://…``, plugins) does the work; this
object only names the deployment, so a ``Deployment`` obtained in another
process (``ws.get_deployment(name)``) manages the same service.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_sdk.errors import DeploymentError, InvalidValue

if TYPE_CHECKING:
    from mlops_sdk.dataset import DatasetVersion
    from mlops_sdk.deploy.base import Deployer, DeploymentInfo
    from mlops_sdk.model import ModelVersion
    from mlops_sdk.monitor import MonitorReport
    from mlops_sdk.workspace import Workspace


def resolve_model(ws: Workspace, model: ModelVersion | str) -> tuple[ModelVersion, str | None]:
    """A ModelVersion from itself or ``"NAME@V"`` / ``"NAME@alias"`` / ``"NAME@@alias"``; plus the alias followed."""
    from mlops_sdk.model import ModelVersion

    if isinstance(model, ModelVersion):
        return model, None
    if not isinstance(model, str) or "@" not in model:
        raise InvalidValue(f"deploy a ModelVersion or 'NAME@VERSION' / 'NAME@alias', got {model!r}")
    name, _, ref = model.partition("@")
    if not name or not ref:
        raise InvalidValue(f"{model!r}: write NAME@VERSION or NAME@alias")
    m = ws.model(name)
    ref = ref.removeprefix("@")
    if ref in m.aliases():
        return m.alias(ref), ref
    return m.version(ref), None


class Deployment:
    """One named deployment on one deployer (see :meth:`Workspace.deploy`)."""

    def __init__(self, workspace: Workspace, name: str, deployer: Deployer, target: str) -> None:
        self.workspace = workspace
        self.name = name
        self.deployer = deployer
        self.target = target

    # -- state ----------------------------------------------------------------------------------
    def info(self) -> DeploymentInfo:
        """What the deployer reports now (model, version, url, status, previous versions…)."""
        return self.deployer.status(self.name)

    @property
    def url(self) -> str | None:
        """The endpoint (stable across ``update`` and ``rollback`` for the local deployer)."""
        return self.info().url

    @property
    def status(self) -> str:
        """``running``, ``stopped`` or ``failed`` (checked against the server's ``/health``)."""
        return self.info().status

    @property
    def model_version(self) -> ModelVersion:
        """The model version served now."""
        info = self.info()
        return self.workspace.model(info.model).version(info.version)

    @property
    def version(self) -> int:
        return self.info().version

    # -- serving --------------------------------------------------------------------------------
    def predict(self, rows: Any) -> list[Any]:
        """Send ``rows`` (DataFrame, list of dicts, list of lists, array) over HTTP; the predictions."""
        return self.deployer.predict(self.name, rows)

    def update(self, model: ModelVersion | str | None = None) -> Deployment:
        """Serve another version; traffic moves once it is healthy, else the old one keeps serving.

        ``model`` is a ModelVersion, ``"NAME@V"``, ``"NAME@alias"``, or None to
        re-resolve the alias this deployment follows.
        """
        info = self.info()
        alias: str | None
        if model is None:
            if not info.alias:
                raise DeploymentError(
                    f"deployment {self.name!r} follows no alias; pass the version to serve: dep.update(mv)"
                )
            mv, alias = self.workspace.model(info.model).alias(info.alias), info.alias
        else:
            mv, alias = resolve_model(self.workspace, model)
        if mv.name != info.model:
            raise DeploymentError(f"deployment {self.name!r} serves model {info.model!r}, not {mv.name!r}")
        self.deployer.update(self.name, f"models:/{mv.name}/{mv.version}")
        if model is not None and alias != info.alias:
            set_alias = getattr(self.deployer, "set_alias", None)
            if callable(set_alias):
                set_alias(self.name, alias)
        return self

    def rollback(self) -> Deployment:
        """Serve the previous version again."""
        self.deployer.rollback(self.name)
        return self

    def stop(self) -> None:
        """Stop serving (the inference log stays); stopping twice is not an error."""
        self.deployer.stop(self.name)

    def logs(self, tail: int = 100) -> str:
        """The last lines of the model server's log."""
        return self.deployer.logs(self.name, tail)

    # -- inference log and monitoring ------------------------------------------------------------
    def inference_log(self, since: _dt.datetime | str | None = None) -> Any:
        """Logged requests as a DataFrame: input columns + prediction, timestamp, latency_ms, model_version."""
        from mlops_sdk.serving.inference_log import read_log

        return read_log(self.workspace.storage, self.name, since)

    def monitor(
        self,
        reference: DatasetVersion | Any,
        *,
        target: str | None = None,
        sensitive: str | None = None,
        sinks: Sequence[str] = (),
        since: _dt.datetime | str | None = None,
        columns: Sequence[str] | None = None,
        **options: Any,
    ) -> MonitorReport:
        """Drift of the logged inputs against ``reference`` (a DatasetVersion or a DataFrame).

        Checks the feature columns both tables share (``target`` and ``sensitive``
        excluded from drift). Alerts go to ``sinks`` and alert plugins.
        """
        from mlops_sdk.monitor import monitor
        from mlops_sdk.serving.inference_log import META_COLUMNS

        ref: Any = reference.to_pandas() if hasattr(reference, "to_pandas") else reference
        current = self.inference_log(since)
        if current.empty:
            raise DeploymentError(f"deployment {self.name!r} has no logged requests yet to monitor")
        if columns is None:
            skip = {target, sensitive, *META_COLUMNS}
            columns = [str(c) for c in ref.columns if c in current.columns and c not in skip]
            if not columns:
                raise DeploymentError(
                    f"deployment {self.name!r}: the inference log shares no feature column with the reference"
                )
        return monitor(ref, current, columns=columns, target=target if target in current.columns else None,
                       sensitive=sensitive, sinks=list(sinks or ()), **options)

    def __repr__(self) -> str:
        try:
            info = self.info()
            return f"<Deployment {self.name!r} {info.model}@{info.version} {info.status} {info.url}>"
        except Exception:
            return f"<Deployment {self.name!r} on {self.target}>"


__all__ = ["Deployment", "resolve_model"]
