"""Pipelines: steps whose data dependencies form a DAG, each run tracked, unchanged steps cached.

>>> import mlops_sdk as mlops
>>> @mlops.step
... def prepare(n: int = 10):
...     return list(range(n))
>>> @mlops.step
... def total(prepare, scale: float = 1.0):
...     return sum(prepare) * scale
>>> pipe = mlops.Pipeline("demo", steps=[total, prepare])
>>> pipe.order
['prepare', 'total']
>>> result = pipe.run(params={"scale": 2.0})          # doctest: +SKIP
>>> result.steps["total"].status, result.steps["total"].output   # doctest: +SKIP
('ran', 90.0)

A step is *cached* (not executed again; its recorded output is reused) when
an earlier FINISHED run of it has the same cache key: sha256 over the step's
name, its normalised code, its resolved params and the content hashes of its
inputs (see :func:`mlops_sdk.steps.cache_key`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from mlops_sdk import dag as _dag
from mlops_sdk.errors import InvalidValue, MlopsError, PipelineError, StepFailed
from mlops_sdk.steps import Step, cache_key, known_step_names, step
from mlops_sdk.validation import to_param_value, validate_name

if TYPE_CHECKING:
    from mlops_sdk.compute.base import ComputeBackend
    from mlops_sdk.run import Run
    from mlops_sdk.workspace import Workspace

STATUSES = ("ran", "cached", "failed", "skipped")

#: Set (to anything but "" or "0") to run every step regardless of the cache: how
#: ``mlops runs reproduce`` re-executes a pipeline's steps.
FORCE_ENV = "MLOPS_PIPELINE_FORCE"


class StepResult:
    """What happened to one step: ``status`` (ran / cached / failed / skipped), ``run_id``, ``output``…"""

    def __init__(
        self,
        name: str,
        status: str,
        *,
        run_id: str | None = None,
        cache_key: str | None = None,
        output_hash: str | None = None,
        error: str | None = None,
        logs: str = "",
        duration: float = 0.0,
        exception: BaseException | None = None,
        workspace: Workspace | None = None,
    ) -> None:
        self.name = name
        self.status = status
        self.run_id = run_id
        self.cache_key = cache_key
        self.output_hash = output_hash
        self.error = error
        self.logs = logs
        self.duration = duration
        self.exception = exception
        self._workspace = workspace
        self._output: Any = None
        self._loaded = False

    def _set_output(self, value: Any) -> None:
        self._output, self._loaded = value, True

    @property
    def ok(self) -> bool:
        return self.status in ("ran", "cached")

    @property
    def output(self) -> Any:
        """The step's return value (read from its run's stored output on first use; None unless ok)."""
        if not self._loaded:
            if not self.ok or self._workspace is None or self.run_id is None:
                return None
            from mlops_sdk.step_output import load_output

            self._set_output(load_output(self._workspace.get_run(self.run_id)))
        return self._output

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "run_id": self.run_id, "cache_key": self.cache_key,
                "output_hash": self.output_hash, "duration": round(self.duration, 4), "error": self.error}

    def __repr__(self) -> str:
        run = f" run_id={self.run_id[:8]}" if self.run_id else ""
        return f"<StepResult {self.name!r} {self.status}{run}>"


@attrs.frozen
class PipelineResult:
    """The outcome of ``pipe.run()``: ``steps`` (name → :class:`StepResult`, in run order) and the pipeline run."""

    name: str
    run_id: str
    status: str  # FINISHED or FAILED
    steps: Mapping[str, StepResult]
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED"

    @property
    def outputs(self) -> dict[str, Any]:
        """name → output of every step that ran or was cached."""
        return {name: r.output for name, r in self.steps.items() if r.ok}

    def __getitem__(self, name: str) -> StepResult:
        return self.steps[name]

    def raise_for_status(self) -> PipelineResult:
        """Raise if a step failed: its own typed error when it raised one, else :class:`StepFailed`."""
        for r in self.steps.values():
            if r.status == "failed":
                if isinstance(r.exception, MlopsError):
                    raise r.exception
                last = (r.error or "").strip().splitlines()[-1:] or ["(no error recorded)"]
                raise StepFailed(f"step {r.name!r} of pipeline {self.name!r} failed: {last[0]} (run {r.run_id})")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.name, "run_id": self.run_id, "status": self.status,
                "duration": round(self.duration, 4), "steps": [r.to_dict() for r in self.steps.values()]}

    def __repr__(self) -> str:
        counts = {s: sum(r.status == s for r in self.steps.values()) for s in STATUSES}
        shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        return f"<PipelineResult {self.name!r} {self.status}: {shown}>"


@attrs.frozen
class StepStatus:
    """Whether a step would be cached by the next run (``pipe.status()``), and its last run."""

    name: str
    state: str  # cached or stale
    reason: str
    cache_key: str | None
    last_run_id: str | None
    last_status: str | None


class Pipeline:
    """Steps wired by their parameter names into a DAG.

    ``Pipeline("churn", steps=[prepare, fit, evaluate])``: a step parameter
    named after another step receives that step's output; every other
    parameter is a param (``pipe.run(params={"C": 0.5})`` sets it in every
    step that has it, ``{"fit.C": 0.5}`` in one step only).
    """

    def __init__(self, name: str, steps: Sequence[Step], *, experiment: str | None = None) -> None:
        self.name = validate_name("pipeline name", name)
        self.experiment = validate_name("experiment name", experiment or name)
        if isinstance(steps, Step) or not isinstance(steps, Sequence) or not steps:
            raise PipelineError(f"pipeline {name!r} needs a non-empty list of steps")
        by_name: dict[str, Step] = {}
        for s in steps:
            if not isinstance(s, Step):
                raise PipelineError(f"pipeline {name!r}: {s!r} is not a step; decorate it with @mlops.step")
            if s.name in by_name:
                raise PipelineError(f"pipeline {name!r} has two steps named {s.name!r}; give one another name (@mlops.step(name=...))")
            by_name[s.name] = s
        known = known_step_names()
        self.inputs: dict[str, tuple[str, ...]] = {}
        for s in by_name.values():
            self.inputs[s.name] = tuple(p for p in s.parameters if p in by_name)
            for p in s.signature.parameters.values():
                if p.name not in by_name and p.default is p.empty and p.name in known:
                    raise PipelineError(
                        f"step {s.name!r} of pipeline {name!r} takes the output of step {p.name!r}, "
                        f"which is not in the pipeline; add it to steps=[...]"
                    )
        self.order: list[str] = _dag.topological_order(self.inputs)
        self.steps: dict[str, Step] = {n: by_name[n] for n in self.order}
        self.defaults = {n: {k: v for k, v in s.defaults.items() if k not in self.inputs[n]} for n, s in self.steps.items()}

    # -- params -----------------------------------------------------------------------
    def params_of(self, name: str) -> tuple[str, ...]:
        """The param names of step ``name`` (its parameters that are not inputs)."""
        return tuple(p for p in self.steps[name].parameters if p not in self.inputs[name])

    def resolve_params(self, params: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """step → its params: signature defaults, overridden by ``params`` (``"C"`` or ``"fit.C"``)."""
        if params is not None and not isinstance(params, Mapping):
            raise InvalidValue(f"params must be a mapping of name to value, got {type(params).__name__}")
        resolved = {n: dict(d) for n, d in self.defaults.items()}
        for key, value in (params or {}).items():
            if not isinstance(key, str):
                raise InvalidValue(f"param names are strings, got {key!r}")
            target, _, pname = key.rpartition(".") if "." in key else ("", "", key)
            if target and target not in self.steps:
                raise InvalidValue(f"param {key!r}: pipeline {self.name!r} has no step {target!r}")
            names = [target] if target else list(self.steps)
            hits = [n for n in names if pname in self.params_of(n)]
            if not hits:
                if any(pname in self.inputs[n] for n in names):
                    raise InvalidValue(f"{key!r} is the output of step {pname!r}, not a param; it cannot be set")
                known = sorted({p for n in self.steps for p in self.params_of(n)})
                raise InvalidValue(f"pipeline {self.name!r} has no param {key!r}; its params: {', '.join(known) or 'none'}")
            plain = to_param_value(key, value)
            for n in hits:
                resolved[n][pname] = plain
        for n in self.steps:
            missing = [p for p in self.params_of(n) if p not in resolved[n]]
            if missing:
                raise InvalidValue(f"step {n!r} needs param(s) {', '.join(missing)}: pass them in params={{...}}")
        return resolved

    # -- running ----------------------------------------------------------------------
    def run(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        compute: str | ComputeBackend | None = None,
        force: bool = False,
        workspace: Workspace | None = None,
    ) -> PipelineResult:
        """Run every step whose cache key has no FINISHED run yet; reuse the others' outputs.

        ``compute=None`` runs the steps in this process; a compute URI
        (``"local"``, ``"ray://…"``) or backend (``ws.compute``) runs each step
        as a job (step functions must then be importable: defined at the top
        level of a module or script). ``force=True`` runs every step. A failed
        step's dependants are skipped and the result's status is FAILED; call
        :meth:`PipelineResult.raise_for_status` to turn that into an error.
        """
        from mlops_sdk.fluent import default_workspace
        from mlops_sdk.pipeline_exec import Runner

        if not isinstance(force, bool):
            raise InvalidValue(f"force must be True or False, got {force!r}")
        resolved = self.resolve_params(params)
        ws = workspace or default_workspace()
        force = force or os.environ.get(FORCE_ENV, "") not in ("", "0")
        return Runner(self, ws, resolved, dict(params or {}), force=force, compute=compute).run()

    def cache_key(self, name: str, params: Mapping[str, Any], input_hashes: Mapping[str, str]) -> str:
        s = self.steps[name]
        return cache_key(name, s.code_hash, params, {i: input_hashes[i] for i in self.inputs[name]})

    def status(self, params: Mapping[str, Any] | None = None, *, workspace: Workspace | None = None) -> list[StepStatus]:
        """For each step: would the next run reuse it (``cached``) or run it (``stale``, and why)?"""
        from mlops_sdk.fluent import default_workspace
        from mlops_sdk.pipeline_exec import find_cached, step_runs

        ws = workspace or default_workspace()
        resolved = self.resolve_params(params)
        hashes: dict[str, str] = {}
        out = []
        for name in self.order:
            runs = step_runs(ws, self.name, name, limit=1)
            last = runs[0] if runs else None
            last_id, last_status = (last.id, str(last.status)) if last else (None, None)
            waiting = [i for i in self.inputs[name] if i not in hashes]
            if waiting:
                out.append(StepStatus(name, "stale", f"upstream {', '.join(waiting)} will run", None, last_id, last_status))
                continue
            key = self.cache_key(name, resolved[name], hashes)
            hit = find_cached(ws, key) if self.steps[name].cache else None
            if hit is not None:
                hashes[name] = hit.tags["mlops.output_hash"]
                out.append(StepStatus(name, "cached", f"same as run {hit.id[:8]}", key, last_id, last_status))
            else:
                reason = "cache disabled" if not self.steps[name].cache else self._why_stale(ws, name, resolved[name], hashes)
                out.append(StepStatus(name, "stale", reason, key, last_id, last_status))
        return out

    def _why_stale(self, ws: Workspace, name: str, params: Mapping[str, Any], hashes: Mapping[str, str]) -> str:
        from mlops_sdk.pipeline_exec import step_runs

        done = step_runs(ws, self.name, name, limit=1, finished=True)
        if not done:
            return "never ran"
        prev: Run = done[0]
        reasons = []
        if prev.tags.get("mlops.code_hash") != self.steps[name].code_hash:
            reasons.append("code changed")
        changed = sorted(k for k in set(params) | set(prev.params) if params.get(k) != prev.params.get(k))
        if changed:
            reasons.append("params changed: " + ", ".join(changed))
        try:
            before = json.loads(prev.tags.get("mlops.step.inputs", "{}"))
        except json.JSONDecodeError:
            before = {}
        moved = [i for i in self.inputs[name] if (before.get(i) or {}).get("hash") != hashes.get(i)]
        if moved:
            reasons.append("inputs changed: " + ", ".join(moved))
        return "; ".join(reasons) or "changed"

    # -- drawing ----------------------------------------------------------------------
    def labels(self, params: Mapping[str, Any] | None = None) -> dict[str, str]:
        """step → ``name (param=value, …)`` for drawings."""
        resolved = self.resolve_params(params) if params else self.defaults
        return {n: n + (" (" + ", ".join(f"{k}={v!r}" for k, v in p.items()) + ")" if p else "") for n, p in resolved.items()}

    def dag(self, format: str = "text") -> str:
        """The DAG as ``"text"`` (a tree), ``"dot"`` (Graphviz) or ``"mermaid"``."""
        if format == "text":
            return _dag.to_text(self.inputs, self.labels())
        if format == "dot":
            return _dag.to_dot(self.inputs, self.name, self.labels())
        if format == "mermaid":
            return _dag.to_mermaid(self.inputs, self.labels())
        raise InvalidValue(f"format must be text, dot or mermaid, got {format!r} (images: mlops_sdk.dag.render_image)")

    def __repr__(self) -> str:
        return f"<Pipeline {self.name!r} steps={self.order}>"


__all__ = ["Pipeline", "PipelineResult", "Step", "StepResult", "StepStatus", "step"]
