"""Hyperparameter sweeps: ``exp.sweep(fn, grid=... | space=..., metric=..., mode=...)``.

Each trial is a job (:func:`mlops_sdk.job.submit`) on the workspace's compute
backend, run as a child of one parent run (the sweep). A trial's score is the
metric it logged, or the number under that key in the dict it returned.
Trials that fail are kept, reported and sorted last; they never stop the
sweep. Samplers:

* ``"grid"`` (the default with ``grid``): every combination, in order;
* ``"random"`` (the default with ``space``): ``n_trials`` seeded draws;
* ``"optuna"`` or an ``optuna.samplers`` object: an ask/tell loop with
  Optuna's samplers (TPE by default), when Optuna is installed.

``space`` syntax: a tuple is a distribution, a list is a set of choices,
anything else is a constant::

    {"lr": ("loguniform", 1e-4, 1e-1), "dropout": ("uniform", 0.0, 0.5),
     "depth": ("int", 2, 8), "kind": ["a", "b"], "epochs": 10}
"""

from __future__ import annotations

import itertools
import json
import math
import random
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from mlops_sdk.compute.base import JobState
from mlops_sdk.errors import InvalidValue, JobError, MissingDependency
from mlops_sdk.validation import validate_key

if TYPE_CHECKING:
    from mlops_sdk.compute.base import ComputeBackend
    from mlops_sdk.experiment import Experiment
    from mlops_sdk.job import Job
    from mlops_sdk.run import Run

SAMPLERS = ("grid", "random", "optuna")
DISTRIBUTIONS = ("uniform", "loguniform", "int")
_JSON_SCALARS = (str, int, float, bool, type(None))


# -- search spaces ----------------------------------------------------------------------
@attrs.frozen
class Dimension:
    """One parameter of a search space: a distribution, a set of choices, or a constant."""

    kind: str  # uniform | loguniform | int | choice | constant
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()


def _json_value(where: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidValue(f"{where} must be a JSON value, got {value!r}") from exc


def _finite(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidValue(f"{where} must be a finite number, got {value!r}")
    return value


def _check_names(what: str, mapping: object) -> Mapping[str, Any]:
    if not isinstance(mapping, Mapping) or not mapping:
        raise InvalidValue(f"{what} must be a non-empty dict of parameter name -> values")
    for key in mapping:
        validate_key("param key", key)
    return mapping


def expand_grid(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of ``grid``'s values (the Cartesian product, last key fastest).

    A list gives the values to try; anything else is a constant.
    """
    _check_names("grid", grid)
    axes: list[list[Any]] = []
    for key, values in grid.items():
        if isinstance(values, (list, tuple)):
            if not values:
                raise InvalidValue(f"grid[{key!r}] is empty: give at least one value")
            axes.append([_json_value(f"grid[{key!r}] values", v) for v in values])
        else:
            axes.append([_json_value(f"grid[{key!r}]", values)])
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes)]


def parse_space(space: Mapping[str, Any]) -> dict[str, Dimension]:
    """Check a ``space`` and return its dimensions (see the module docstring for the syntax)."""
    _check_names("space", space)
    dims: dict[str, Dimension] = {}
    for key, spec in space.items():
        where = f"space[{key!r}]"
        if isinstance(spec, tuple):
            if len(spec) != 3 or spec[0] not in DISTRIBUTIONS:
                raise InvalidValue(
                    f"{where} = {spec!r}: a distribution is (KIND, LOW, HIGH) with KIND one of "
                    f"{', '.join(DISTRIBUTIONS)}; use a list for a set of choices"
                )
            kind, low, high = spec
            low, high = _finite(f"{where} low", low), _finite(f"{where} high", high)
            if kind == "int":
                if int(low) != low or int(high) != high:
                    raise InvalidValue(f"{where}: int bounds must be whole numbers, got {low!r}, {high!r}")
                if low > high:
                    raise InvalidValue(f"{where}: low {low!r} is above high {high!r}")
            elif low >= high:
                raise InvalidValue(f"{where}: low {low!r} must be below high {high!r}")
            if kind == "loguniform" and low <= 0:
                raise InvalidValue(f"{where}: loguniform needs low > 0, got {low!r}")
            dims[key] = Dimension(kind, float(low), float(high))
        elif isinstance(spec, list):
            if not spec:
                raise InvalidValue(f"{where} is an empty list of choices")
            dims[key] = Dimension("choice", choices=tuple(_json_value(f"{where} choices", v) for v in spec))
        else:
            dims[key] = Dimension("constant", choices=(_json_value(where, spec),))
    return dims


def sample(dims: Mapping[str, Dimension], rng: random.Random) -> dict[str, Any]:
    """One random point of the space (loguniform draws uniformly in log space; int bounds inclusive)."""
    out: dict[str, Any] = {}
    for key, d in dims.items():
        if d.kind == "uniform":
            out[key] = rng.uniform(d.low, d.high)
        elif d.kind == "loguniform":
            out[key] = min(max(math.exp(rng.uniform(math.log(d.low), math.log(d.high))), d.low), d.high)
        elif d.kind == "int":
            out[key] = rng.randint(int(d.low), int(d.high))
        else:
            out[key] = d.choices[rng.randrange(len(d.choices))]
    return out


# -- samplers: ask for params, tell the score ------------------------------------------------
class _Sampler:
    def ask(self) -> tuple[dict[str, Any], Any] | None:
        raise NotImplementedError

    def tell(self, token: Any, value: float | None) -> None:
        """``value`` is None for a trial that failed or reported no metric."""


class _GridSampler(_Sampler):
    def __init__(self, points: list[dict[str, Any]]) -> None:
        self._points = iter(points)

    def ask(self) -> tuple[dict[str, Any], Any] | None:
        point = next(self._points, None)
        return None if point is None else (point, None)


class _RandomSampler(_Sampler):
    def __init__(self, dims: dict[str, Dimension], n_trials: int, seed: int) -> None:
        self._dims, self._left, self._rng = dims, n_trials, random.Random(seed)

    def ask(self) -> tuple[dict[str, Any], Any] | None:
        if self._left <= 0:
            return None
        self._left -= 1
        return sample(self._dims, self._rng), None


class _OptunaSampler(_Sampler):
    """Optuna's ask/tell interface: the study decides, we run the trials."""

    def __init__(self, dims: dict[str, Dimension], n_trials: int, mode: str, sampler: Any, seed: int) -> None:
        import optuna
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if sampler is None or sampler == "optuna":
            sampler = optuna.samplers.TPESampler(seed=seed)
        self._optuna = optuna
        self._study = optuna.create_study(direction="minimize" if mode == "min" else "maximize", sampler=sampler)
        self._left = n_trials
        self._dists: dict[str, Any] = {}
        self._constants: dict[str, Any] = {}
        for key, d in dims.items():
            if d.kind == "constant":
                self._constants[key] = d.choices[0]
            elif d.kind == "choice":
                if not all(isinstance(c, _JSON_SCALARS) for c in d.choices):
                    raise InvalidValue(f"space[{key!r}]: Optuna choices must be numbers, strings, booleans or None")
                self._dists[key] = CategoricalDistribution(d.choices)
            elif d.kind == "int":
                self._dists[key] = IntDistribution(int(d.low), int(d.high))
            else:
                self._dists[key] = FloatDistribution(d.low, d.high, log=d.kind == "loguniform")

    def ask(self) -> tuple[dict[str, Any], Any] | None:
        if self._left <= 0:
            return None
        self._left -= 1
        trial = self._study.ask(self._dists)
        return {**trial.params, **self._constants}, trial

    def tell(self, token: Any, value: float | None) -> None:
        if value is None:
            self._study.tell(token, state=self._optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(token, value)


def _is_optuna_sampler(sampler: object) -> bool:
    return type(sampler).__module__.split(".")[0] == "optuna"


# -- results ------------------------------------------------------------------------------
@attrs.define
class TrialOutcome:
    """What the sweep knows of one trial besides its run."""

    index: int
    params: dict[str, Any]
    state: JobState
    value: float | None = None
    error: str | None = None
    result: Any = None


class SweepResult(list["Run"]):
    """The trials (runs) of a sweep, best first; failed trials last.

    ``.best`` is the best trial, ``.parent`` the sweep's run (the trials are
    its children), ``.to_records()`` one dict per trial (for a DataFrame).
    """

    def __init__(
        self, parent: Run, trials: Sequence[Run], outcomes: Mapping[str, TrialOutcome], *, metric: str, mode: str
    ) -> None:
        self.parent = parent
        self.metric = metric
        self.mode = mode
        self.outcomes = dict(outcomes)
        sign = 1.0 if mode == "min" else -1.0

        def key(run: Run) -> tuple[int, float, int]:
            o = self.outcomes[run.id]
            if o.value is not None:
                return (0, sign * o.value, o.index)
            return (1 if o.state is JobState.SUCCEEDED else 2, 0.0, o.index)

        super().__init__(sorted(trials, key=key))

    def value(self, trial: Run) -> float | None:
        """The trial's score (None when it failed or reported no metric)."""
        return self.outcomes[trial.id].value

    @property
    def scored(self) -> list[Run]:
        """Trials that reported the metric, best first."""
        return [t for t in self if self.outcomes[t.id].value is not None]

    @property
    def failed(self) -> list[Run]:
        """Trials that did not report the metric (failed, cancelled, or never logged it)."""
        return [t for t in self if self.outcomes[t.id].value is None]

    @property
    def best(self) -> Run:
        """The best trial; ``JobError`` if no trial reported the metric."""
        scored = self.scored
        if not scored:
            errors = sorted({o.error or "" for o in self.outcomes.values()})
            raise JobError(
                f"no trial of sweep {self.parent.name} reported {self.metric!r} "
                f"({len(self)} trials; errors: {'; '.join(e for e in errors if e)[:2000] or 'none'})"
            )
        return scored[0]

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.outcomes[self.best.id].params)

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per trial, best first: trial, run_id, status, value, params.*, metrics.*, error."""
        out = []
        for run in self:
            o = self.outcomes[run.id]
            record: dict[str, Any] = {
                "trial": o.index, "run_id": run.id, "name": run.name, "status": str(run.status), self.metric: o.value,
            }
            record.update({f"params.{k}": v for k, v in o.params.items()})
            record.update({f"metrics.{k}": v for k, v in run.metrics.items()})
            record["error"] = o.error
            out.append(record)
        return out

    def _repr_html_(self) -> str:
        from mlops_sdk.display import html_table

        records = self.to_records()
        params = sorted({k for r in records for k in r if k.startswith("params.")})
        headers = ["trial", "status", self.metric, *params, "run_id", "error"]
        rows = [[r.get(h) for h in headers] for r in records]
        scored = self.scored
        best = f"best {self.metric} = {self.value(scored[0]):.6g}" if scored else "no trial reported the metric"
        return html_table(headers, rows, caption=f"Sweep {self.parent.name}: {len(self)} trials, {best} ({self.mode})")

    def __repr__(self) -> str:
        scored = self.scored
        best = f", best {self.metric}={self.value(scored[0]):.6g}" if scored else ""
        return f"SweepResult({self.parent.name!r}, {len(self)} trials, {len(self.failed)} failed{best})"


# -- the loop ---------------------------------------------------------------------------------
def _positive_int(name: str, value: object, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValue(f"{name} must be a positive integer, got {value!r}")
    return value


def _make_sampler(
    grid: Mapping[str, Any] | None,
    space: Mapping[str, Any] | None,
    n_trials: int | None,
    sampler: Any,
    mode: str,
    seed: int,
) -> tuple[str, _Sampler]:
    if (grid is None) == (space is None):
        raise InvalidValue("give exactly one of grid= (every combination) or space= (distributions to sample)")
    if sampler is None:
        sampler = "grid" if grid is not None else "random"
    is_object = _is_optuna_sampler(sampler)
    if not is_object and sampler not in SAMPLERS:
        raise InvalidValue(f"unknown sampler {sampler!r}: use {', '.join(SAMPLERS)} or an optuna.samplers object")
    if sampler == "grid":
        if grid is None:
            raise InvalidValue('the grid sampler needs grid=; use sampler="random" or "optuna" with space=')
        if n_trials is not None:
            raise InvalidValue("n_trials is for the random and optuna samplers; a grid runs every combination")
        return "grid", _GridSampler(expand_grid(grid))
    if n_trials is None:
        raise InvalidValue(f"the {'optuna' if is_object else sampler} sampler needs n_trials")
    # a grid given to random/optuna is a space of choices
    dims = parse_space({k: list(v) if isinstance(v, (list, tuple)) else v for k, v in grid.items()}) if grid else (
        parse_space(space or {})
    )
    if sampler == "random":
        return "random", _RandomSampler(dims, n_trials, seed)
    try:
        import optuna  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(
            "the optuna sampler needs Optuna: pip install 'mlops-sdk[optuna]' (or use sampler=\"random\")"
        ) from exc
    return "optuna", _OptunaSampler(dims, n_trials, mode, sampler, seed)


def run_sweep(
    experiment: Experiment,
    fn: Callable[..., Any],
    *,
    grid: Mapping[str, Any] | None = None,
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
    """Run a sweep; see :meth:`mlops_sdk.experiment.Experiment.sweep`."""
    from mlops_sdk.compute.base import ComputeBackend
    from mlops_sdk.compute.worker import SWEEP_METRIC_TAG
    from mlops_sdk.job import function_ref, submit, validate_resources
    from mlops_sdk.run import status_for_exception

    ws = experiment.workspace
    validate_key("metric", metric)
    if mode not in ("min", "max"):
        raise InvalidValue(f'mode must be "min" or "max", got {mode!r}')
    _positive_int("max_parallel", max_parallel)
    _positive_int("n_trials", n_trials, allow_none=True)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InvalidValue(f"seed must be a non-negative integer, got {seed!r}")
    seed = secrets.randbits(32) if seed is None else seed
    sampler_name, suggester = _make_sampler(grid, space, n_trials, sampler, mode, seed)
    ref = function_ref(fn)  # refuse lambdas before anything is recorded
    if isinstance(compute, str):
        from mlops_sdk.plugins import create_backend

        backend: ComputeBackend = create_backend("compute", compute, root=ws.root)
    elif compute is None:
        backend = ws.compute
    elif isinstance(compute, ComputeBackend):
        backend = compute
    else:
        raise InvalidValue(f"compute must be a backend URI or a ComputeBackend, got {type(compute).__name__}")
    checked = validate_resources(resources or {}, getattr(backend, "resource_keys", ()))
    check = getattr(backend, "check_resources", None)
    if check is not None:
        check(checked)
    if name is not None:
        validate_key("run name", name)

    tags = {
        "mlops.sweep": "true",
        "mlops.sweep.function": f"{ref.module}:{ref.qualname}",
        "mlops.sweep.metric": metric,
        "mlops.sweep.mode": mode,
        "mlops.sweep.sampler": sampler_name if isinstance(sampler, (str, type(None))) else type(sampler).__name__,
        "mlops.sweep.seed": str(seed),
        "mlops.sweep.max_parallel": str(max_parallel),
    }
    described = json.dumps(grid if grid is not None else {k: list(v) if isinstance(v, tuple) else v for k, v in (space or {}).items()})
    if len(described) <= 60_000:
        tags["mlops.sweep.grid" if grid is not None else "mlops.sweep.space"] = described
    parent = experiment.start_run(name=name or f"sweep-{ref.qualname}", tags=tags)

    in_flight: dict[str, tuple[Job, int, dict[str, Any], Any]] = {}
    trials: list[Run] = []
    outcomes: dict[str, TrialOutcome] = {}
    sign = 1.0 if mode == "min" else -1.0
    best: float | None = None
    try:
        index = 0
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < max_parallel:
                asked = suggester.ask()
                if asked is None:
                    exhausted = True
                    break
                params, token = asked
                job = submit(
                    ws, fn, params, checked, experiment=experiment.name, name=f"trial-{index}", parent=parent.id,
                    tags={"mlops.sweep_id": parent.id, "mlops.trial": str(index), SWEEP_METRIC_TAG: metric},
                    compute=backend,
                )
                in_flight[job.id] = (job, index, params, token)
                index += 1
            if not in_flight:
                break
            oldest = next(iter(in_flight.values()))[0]
            oldest.wait(0.05)
            for job_id in [j for j, (job, *_) in in_flight.items() if job.status.is_terminal]:
                job, i, params, token = in_flight.pop(job_id)
                run, outcome = _collect(experiment, parent, job, i, params, metric)
                trials.append(run)
                outcomes[run.id] = outcome
                suggester.tell(token, outcome.value)
                if outcome.value is not None and (best is None or sign * outcome.value < sign * best):
                    best = outcome.value
                    parent.set_tag("mlops.sweep.best_run_id", run.id)
                if best is not None:
                    parent.log_metric(f"best_{metric}", best, step=len(trials))
    except BaseException as exc:
        for job, *_ in in_flight.values():
            job.cancel()
        parent.end(*status_for_exception(exc))
        raise
    result = SweepResult(parent, trials, outcomes, metric=metric, mode=mode)
    if result.scored:
        parent.end("FINISHED")
    else:
        try:
            result.best  # noqa: B018 - builds the message
        except JobError as exc:
            parent.end("FAILED", str(exc))
    result.parent = ws.get_run(parent.id)
    return result


def _collect(
    experiment: Experiment, parent: Run, job: Job, index: int, params: dict[str, Any], metric: str
) -> tuple[Run, TrialOutcome]:
    """The finished trial's run and score; a trial whose job never started a run gets one, ended FAILED."""
    state = job.status
    result: Any = None
    error: str | None = None
    if state is JobState.SUCCEEDED:
        result = job.result
    else:
        try:
            job.result  # noqa: B018 - raises the job's error
        except JobError as exc:
            error = str(exc)
        except Exception as exc:  # a backend's own failure: still a failed trial
            error = f"{type(exc).__name__}: {exc}"
    run = job.run
    if run is None:  # the worker died before starting the run (import error, killed while queued…)
        logs = job.logs()[-4000:]
        placeholder = experiment.start_run(
            name=f"trial-{index}", params=params, parent=parent,
            tags={"mlops.sweep_id": parent.id, "mlops.trial": str(index), "mlops.job_id": job.id},
        )
        placeholder.end(
            "KILLED" if state is JobState.CANCELLED else "FAILED",
            (error or f"the job ended {state}") + (f"\n--- job logs ---\n{logs}" if logs else ""),
        )
        run = experiment.workspace.get_run(placeholder.id)
    value: float | None = run.metrics.get(metric)
    if value is None and isinstance(result, dict):
        returned = result.get(metric)
        if isinstance(returned, (int, float)) and not isinstance(returned, bool):
            value = float(returned)
    if value is not None and not math.isfinite(value):
        error, value = f"{metric} is {value}", None
    if value is None and error is None:
        logged = ", ".join(sorted(run.metrics)) or "nothing"
        error = f"the trial neither logged nor returned {metric!r} (it logged {logged})"
    return run, TrialOutcome(index=index, params=params, state=state, value=value, error=error, result=result)

