"""An experiment: a named group of runs that answer one question."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mlops_sdk.query import parse_filter, parse_order_by
from mlops_sdk.records import ExperimentInfo
from mlops_sdk.validation import to_tag_value, validate_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlops_sdk.compute.base import ComputeBackend
    from mlops_sdk.run import Run, RunList
    from mlops_sdk.sweep import SweepResult
    from mlops_sdk.workspace import Workspace


class Experiment:
    """Start runs in it and query them.

    >>> exp = ws.experiment("churn")                                  # doctest: +SKIP
    >>> with exp.start_run(name="rf", params={"n": 100}) as run:      # doctest: +SKIP
    ...     run.log_metric("acc", 0.91)
    >>> exp.runs(filter="metrics.acc > 0.9", order_by=["-metrics.acc"])  # doctest: +SKIP
    """

    def __init__(self, workspace: Workspace, info: ExperimentInfo) -> None:
        self.workspace = workspace
        self._info = info

    @property
    def id(self) -> str:
        return self._info.id

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def created_at(self) -> float:
        return self._info.created_at

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._info.tags)

    def set_tag(self, key: str, value: str) -> None:
        validate_key("tag key", key)
        self.workspace.tracking.set_experiment_tag(self.id, key, to_tag_value(key, value))
        self._info = self.workspace.tracking.get_experiment(self.id)

    def start_run(
        self,
        name: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        parent: Run | str | None = None,
    ) -> Run:
        """Start a run now; use it as a context manager (or call ``run.end()``).

        ``parent`` nests the run under another (a sweep's trials, a pipeline's steps).
        """
        from mlops_sdk import run as _run

        return _run.start(
            self.workspace, self.id, self.name, name=name, params=params, tags=tags, parent=parent
        )

    def runs(
        self,
        filter: str | None = None,
        order_by: str | Iterable[str] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> RunList:
        """Runs of this experiment matching ``filter``, ordered by ``order_by`` then newest first.

        ``filter`` is like ``"metrics.acc > 0.8 and params.n = 100"``; ``order_by``
        items are like ``"-metrics.acc"`` or ``"params.n ASC"``.
        """
        from mlops_sdk.run import Run, RunList
        from mlops_sdk.workspace import _check_limit, _check_offset

        self.workspace.flush()
        records = self.workspace.tracking.search_runs(
            [self.id], parse_filter(filter), parse_order_by(order_by), limit=_check_limit(limit), offset=_check_offset(offset)
        )
        return RunList(Run(self.workspace, r) for r in records)

    def sweep(
        self,
        fn: Callable[..., Any],
        grid: Mapping[str, Any] | None = None,
        *,
        space: Mapping[str, Any] | None = None,
        n_trials: int | None = None,
        max_parallel: int = 1,
        metric: str,
        mode: str = "min",
        sampler: Any = None,
        seed: int | None = None,
        resources: Mapping[str, Any] | None = None,
        compute: ComputeBackend | str | None = None,
        name: str | None = None,
    ) -> SweepResult:
        """Run ``fn(**params)`` once per trial, as jobs on the compute backend; trials best first.

        ``grid`` tries every combination; ``space`` (with ``n_trials``) is sampled:
        ``{"lr": ("loguniform", 1e-4, 1e-1), "depth": ("int", 2, 8), "kind": ["a", "b"]}``.
        ``sampler``: ``"grid"``, ``"random"`` (seeded by ``seed``), ``"optuna"`` or an
        ``optuna.samplers`` object. A trial's score is ``metric`` as it logged it, or
        as the number under that key in the dict it returned; ``mode`` is ``"min"`` or
        ``"max"``. The trials are child runs of ``result.parent``; failed trials are
        kept and sorted last. ``resources`` apply to each trial (see ``ws.submit``);
        ``compute`` overrides the workspace's backend (a URI or a backend).

        >>> result = exp.sweep(train, grid={"lr": [0.1, 0.01]}, metric="val_loss")  # doctest: +SKIP
        >>> result.best.params, result.best.metrics["val_loss"]                     # doctest: +SKIP
        """
        from mlops_sdk.sweep import run_sweep

        return run_sweep(
            self, fn, grid=grid, space=space, n_trials=n_trials, max_parallel=max_parallel, metric=metric,
            mode=mode, sampler=sampler, seed=seed, resources=resources, compute=compute, name=name,
        )

    def count_runs(self, filter: str | None = None) -> int:
        """How many runs match ``filter``."""
        self.workspace.flush()
        return self.workspace.tracking.count_runs([self.id], parse_filter(filter))

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def _repr_html_(self) -> str:
        from mlops_sdk.display import html_table, runs_table

        records = [r.record for r in self.runs(limit=50)]
        headers, rows = runs_table(records)
        return html_table(headers, rows, caption=f"Experiment {self.name} (latest {len(records)} runs)")
