"""The workspace: one backend of each kind, bound together.

``Workspace.open()`` resolves settings (see :mod:`mlops_sdk.config`), builds
the tracking store and checks every URI's scheme up front, so a typo fails at
open rather than deep in a training loop. Storage and compute are created on
first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_sdk import config as _config
from mlops_sdk.errors import ExperimentNotFound
from mlops_sdk.plugins import create_backend, get_plugin_manager
from mlops_sdk.query import parse_filter, parse_order_by
from mlops_sdk.validation import validate_name

if TYPE_CHECKING:
    from mlops_sdk.compute.base import ComputeBackend
    from mlops_sdk.dataset import Dataset
    from mlops_sdk.deploy.base import Deployer
    from mlops_sdk.deployment import Deployment
    from mlops_sdk.experiment import Experiment
    from mlops_sdk.job import Job
    from mlops_sdk.model import Model, ModelVersion
    from mlops_sdk.run import Run, RunList
    from mlops_sdk.storage.base import Storage
    from mlops_sdk.storage.datasets import DatasetStore
    from mlops_sdk.storage.objects import ObjectStore
    from mlops_sdk.tracking.base import TrackingStore
    from mlops_sdk.tracking.writer import BatchWriter


class Workspace:
    """Experiments, runs and their files, on the backends named by the configuration.

    >>> ws = Workspace.open()                                   # doctest: +SKIP
    >>> ws = Workspace.open(tracking="sqlite:///runs.db")       # doctest: +SKIP
    """

    def __init__(self, config: _config.WorkspaceConfig) -> None:
        self.config = config
        registry = get_plugin_manager().registry
        for kind, uri in (("tracking", config.tracking), ("storage", config.storage), ("compute", config.compute)):
            registry.lookup(kind, uri)  # unknown schemes fail here, at open
        self.tracking: TrackingStore = create_backend("tracking", config.tracking, root=config.root)
        self._writer: BatchWriter | None = None
        self._closed = False

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        tracking: str | None = None,
        storage: str | None = None,
        compute: str | None = None,
        deploy: str | None = None,
        flush_interval: float | None = None,
    ) -> Workspace:
        """Open the workspace at ``path`` (default: found from the current folder).

        Arguments override environment variables, which override ``mlops.toml``
        / ``[tool.mlops]``, which override the defaults under ``./.mlops/``.
        """
        cfg = _config.resolve(
            path, tracking=tracking, storage=storage, compute=compute, deploy=deploy, flush_interval=flush_interval
        )
        return cls(cfg)

    # -- backends -------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.config.root

    @cached_property
    def storage(self) -> Storage:
        """The blob storage backend (created on first use)."""
        return create_backend("storage", self.config.storage, root=self.config.root)  # type: ignore[no-any-return]

    @cached_property
    def objects(self) -> ObjectStore:
        """Content-addressed, verified objects in :attr:`storage`."""
        from mlops_sdk.storage.objects import ObjectStore

        return ObjectStore(self.storage)

    @property
    def state_dir(self) -> Path:
        """A local folder for per-machine caches (the stat cache): ``<root>/.mlops/cache``."""
        return self.config.root / ".mlops" / "cache"

    @cached_property
    def dataset_store(self) -> DatasetStore:
        """Where dataset files are kept: objects in :attr:`storage` by default, DVC with ``dvc://``."""
        return self.storage.dataset_store(self.state_dir)

    @cached_property
    def compute(self) -> ComputeBackend:
        """The compute backend (created on first use)."""
        return create_backend("compute", self.config.compute, root=self.config.root)  # type: ignore[no-any-return]

    @property
    def writer(self) -> BatchWriter:
        """This workspace's background writer (one per workspace per process)."""
        if self._writer is None:
            from mlops_sdk.tracking.writer import BatchWriter

            self._writer = BatchWriter(self.tracking, flush_interval=self.config.flush_interval)
        return self._writer

    def flush(self) -> None:
        """Write every queued metric, param and tag now."""
        if self._writer is not None:
            self._writer.flush()

    # -- experiments and runs ---------------------------------------------------------
    def experiment(self, name: str) -> Experiment:
        """The experiment called ``name``, created if it does not exist."""
        from mlops_sdk.experiment import Experiment

        validate_name("experiment name", name)
        return Experiment(self, self.tracking.get_or_create_experiment(name))

    def get_experiment(self, name: str) -> Experiment:
        """The experiment called ``name``; raise ``ExperimentNotFound`` if there is none."""
        from mlops_sdk.experiment import Experiment

        validate_name("experiment name", name)
        info = self.tracking.find_experiment(name)
        if info is None:
            raise ExperimentNotFound(f"no experiment named {name!r} in {self.tracking.uri}")
        return Experiment(self, info)

    def experiments(self) -> list[Experiment]:
        """All experiments, oldest first."""
        from mlops_sdk.experiment import Experiment

        return [Experiment(self, info) for info in self.tracking.list_experiments()]

    def get_run(self, run_id: str) -> Run:
        """One run by id (``RunNotFound`` if there is none)."""
        from mlops_sdk.run import Run, active_run_by_id

        if not isinstance(run_id, str):
            from mlops_sdk.errors import InvalidValue

            raise InvalidValue(f"run id must be a string, got {type(run_id).__name__}")
        live = active_run_by_id(run_id)
        if live is not None and live.workspace is self:
            return live
        self.flush()
        return Run(self, self.tracking.get_run(run_id))

    def runs(
        self,
        filter: str | None = None,
        order_by: str | Iterable[str] | None = None,
        *,
        experiments: Iterable[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> RunList:
        """Runs across experiments (by name; all when None) matching ``filter``, newest first."""
        from mlops_sdk.run import Run, RunList

        ids = None
        if experiments is not None:
            ids = [self.get_experiment(name).id for name in experiments]
        self.flush()
        records = self.tracking.search_runs(ids, parse_filter(filter), parse_order_by(order_by), limit=_check_limit(limit), offset=_check_offset(offset))
        return RunList(Run(self, r) for r in records)

    # -- datasets -----------------------------------------------------------------------
    def dataset(self, name: str) -> Dataset:
        """The dataset called ``name`` (it exists once a version has been added)."""
        from mlops_sdk.dataset import Dataset

        return Dataset(self, name)

    def datasets(self) -> list[Dataset]:
        """Every dataset with at least one version, by name."""
        from mlops_sdk.dataset import Dataset

        return [Dataset(self, name) for name in self.tracking.version_names("dataset")]

    # -- models -------------------------------------------------------------------------
    def model(self, name: str) -> Model:
        """The registered model called ``name``; ``ModelNotFound`` when no version was logged under it.

        Models are registered with ``run.log_model(obj, name)``.
        """
        from mlops_sdk.model import Model

        model = Model(self, name)
        if not self.tracking.list_versions("model", model.name):
            raise model._not_found()
        return model

    def models(self) -> list[Model]:
        """Every registered model, by name."""
        from mlops_sdk.model import Model

        return [Model(self, name) for name in self.tracking.version_names("model")]

    # -- compute ------------------------------------------------------------------------
    def submit(
        self,
        fn: Callable[..., Any],
        params: Mapping[str, Any] | None = None,
        resources: Mapping[str, Any] | None = None,
        *,
        experiment: str | None = None,
        name: str | None = None,
        parent: Run | str | None = None,
    ) -> Job:
        """Run ``fn(**params)`` on the compute backend as a tracked run; returns a :class:`Job`.

        ``resources``: ``cpus``, ``gpus``, ``memory`` (bytes or ``"512MB"``),
        ``timeout`` (seconds). ``parent`` nests the job's run under a run; the
        experiment defaults to the parent's, else ``"jobs"``.
        """
        from mlops_sdk.job import submit

        return submit(
            self, fn, params or {}, resources or {}, experiment=experiment, name=name, parent=parent
        )

    # -- deployments ----------------------------------------------------------------------
    def deployer(self, target: str | None = None) -> Deployer:
        """The deployer backend for ``target`` (default: the workspace's ``deploy`` URI)."""
        uri = target or self.config.deploy
        env = {"MLOPS_TRACKING": self.config.tracking, "MLOPS_STORAGE": self.config.storage}
        return create_backend("deployer", uri, root=self.config.root, env=env)  # type: ignore[no-any-return]

    def deploy(
        self,
        model: ModelVersion | str,
        name: str,
        target: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """Serve ``model`` (a ModelVersion, ``"NAME@V"`` or ``"NAME@alias"``) as deployment ``name``.

        Returns once the endpoint answers its health check. A deployment made
        from an alias follows it: ``dep.update()`` serves where it points now.
        ``config`` (local): ``port``, ``host``, ``log_sample_rate``, ``token_env``, ``timeout``.
        """
        from mlops_sdk.deployment import Deployment, resolve_model

        validate_name("deployment name", name)
        mv, alias = resolve_model(self, model)
        uri = target or self.config.deploy
        deployer = self.deployer(uri)
        cfg = dict(config or {})
        if alias is not None:
            cfg.setdefault("alias", alias)
        deployer.deploy(name, f"models:/{mv.name}/{mv.version}", cfg)
        return Deployment(self, name, deployer, uri)

    def get_deployment(self, name: str, target: str | None = None) -> Deployment:
        """A deployment by name; :class:`~mlops_sdk.errors.DeploymentNotFound` when there is none."""
        from mlops_sdk.deployment import Deployment

        validate_name("deployment name", name)
        uri = target or self.config.deploy
        deployer = self.deployer(uri)
        deployer.status(name)  # raises DeploymentNotFound
        return Deployment(self, name, deployer, uri)

    def deployments(self, target: str | None = None) -> list[Deployment]:
        """Every deployment the deployer knows (running, stopped or failed), by name."""
        from mlops_sdk.deployment import Deployment

        uri = target or self.config.deploy
        deployer = self.deployer(uri)
        return [Deployment(self, info.name, deployer, uri) for info in deployer.list()]

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Flush pending writes and release connections."""
        if self._closed:
            return
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            self._closed = True
            if "dataset_store" in self.__dict__:
                self.dataset_store.close()
            self.tracking.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace(root={str(self.root)!r}, tracking={self.tracking.uri!r}, storage={self.config.storage!r})"

    def _repr_html_(self) -> str:
        from mlops_sdk.display import html_table

        rows = [(k, v, self.config.sources.get(k, "")) for k, v in self.config.uris().items()]
        return html_table(["backend", "uri", "from"], rows, caption=f"Workspace at {self.root}")


def _check_limit(limit: int | None) -> int | None:
    from mlops_sdk.errors import InvalidValue

    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidValue(f"limit must be a non-negative integer, got {limit!r}")
    return limit


def _check_offset(offset: int) -> int:
    from mlops_sdk.errors import InvalidValue

    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidValue(f"offset must be a non-negative integer, got {offset!r}")
    return offset
