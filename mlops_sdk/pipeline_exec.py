"""Running a pipeline: the cache lookup, each step as a child run, in-process or as compute jobs.

A step run is tagged ``mlops.pipeline``, ``mlops.role=step``, ``mlops.step``,
``mlops.cache_key``, ``mlops.code_hash``, ``mlops.step.inputs`` (upstream run
ids and output hashes, JSON) and, once its output is stored,
``mlops.output_hash``. Jobs run :func:`execute_step_job`, which finds the
step and its inputs again from those tags, so nothing is pickled.
"""

from __future__ import annotations

import io
import json
import sys
import time
import traceback
from collections.abc import Mapping
from contextlib import redirect_stderr, redirect_stdout
from typing import TYPE_CHECKING, Any

from mlops_sdk.errors import InvalidValue, JobError
from mlops_sdk.records import RunStatus
from mlops_sdk.steps import Step, canonical_json, load_step

if TYPE_CHECKING:
    from mlops_sdk.compute.base import ComputeBackend
    from mlops_sdk.job import Job
    from mlops_sdk.pipeline import Pipeline, PipelineResult, StepResult
    from mlops_sdk.run import Run
    from mlops_sdk.workspace import Workspace

LOGS_ARTIFACT = "mlops-step-logs.txt"
SUMMARY_ARTIFACT = "mlops-pipeline.json"
POLL_SECONDS = 0.05


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def find_cached(ws: Workspace, key: str) -> Run | None:
    """The newest FINISHED step run with cache key ``key`` that stored its output."""
    for run in ws.runs(f"tags.`mlops.cache_key` = {_quote(key)} and attributes.status = 'FINISHED'", limit=5):
        if "mlops.output_hash" in run.tags:
            return run
    return None


def step_runs(ws: Workspace, pipeline: str, step: str, *, limit: int = 1, finished: bool = False) -> list[Run]:
    """The newest runs of ``step`` in ``pipeline`` (FINISHED ones only with ``finished``)."""
    query = f"tags.`mlops.pipeline` = {_quote(pipeline)} and tags.`mlops.step` = {_quote(step)}"
    if finished:
        query += " and attributes.status = 'FINISHED'"
    return list(ws.runs(query, limit=limit))


class _Tee(io.TextIOBase):
    def __init__(self, echo: Any, sink: io.StringIO) -> None:
        self.echo, self.sink = echo, sink

    def write(self, text: str) -> int:
        self.sink.write(text)
        if self.echo is not None:
            self.echo.write(text)
        return len(text)

    def flush(self) -> None:
        if self.echo is not None:
            self.echo.flush()


def execute_body(run: Run, step: Step, params: Mapping[str, Any], inputs: Mapping[str, Any],
                 upstream_run_ids: list[str], logs: io.StringIO) -> tuple[Any, str]:
    """Inside the active step ``run``: record lineage, call the step, store its output; ``(value, hash)``."""
    from mlops_sdk.step_output import iter_datasets, store_output

    ws = run.workspace
    datasets: dict[tuple[str, int | None], Any] = {}
    for rid in upstream_run_ids:
        for dsv in ws.get_run(rid).datasets():
            datasets[(dsv.name, dsv.version)] = dsv
    for value in inputs.values():
        for dsv in iter_datasets(value):
            datasets[(dsv.name, dsv.version)] = dsv
    for dsv in datasets.values():
        run.use_dataset(dsv)
    try:
        with redirect_stdout(_Tee(sys.stdout, logs)), redirect_stderr(_Tee(sys.stderr, logs)):
            value = step.fn(**params, **inputs)
        digest = store_output(run, step.name, value)
    finally:
        if logs.getvalue():
            run.log_text(logs.getvalue(), LOGS_ARTIFACT)
    for dsv in iter_datasets(value):
        ws.tracking.add_lineage(run.id, "dataset", dsv.name, dsv.version, "output")
    run.set_tag("mlops.output_hash", digest)
    return value, digest


def execute_step_job(**params: Any) -> dict[str, Any]:
    """What a compute job runs for one step: inputs from the store by reference, output to the store."""
    from mlops_sdk.fluent import active_run
    from mlops_sdk.step_output import load_output

    run = active_run()
    if run is None:
        raise JobError("execute_step_job runs inside a job's run")
    tags = run.tags
    step = load_step(json.loads(tags["mlops.step.function"]))
    upstream = json.loads(tags.get("mlops.step.inputs", "{}"))
    inputs = {name: load_output(run.workspace.get_run(info["run_id"])) for name, info in upstream.items()}
    _, digest = execute_body(run, step, params, inputs, [i["run_id"] for i in upstream.values()], io.StringIO())
    return {"output_hash": digest}


class Runner:
    """One ``pipe.run()``: the pipeline run, then each step in DAG order."""

    def __init__(self, pipe: Pipeline, ws: Workspace, params: dict[str, dict[str, Any]], given: dict[str, Any],
                 *, force: bool, compute: str | ComputeBackend | None) -> None:
        self.pipe, self.ws, self.params, self.given, self.force = pipe, ws, params, given, force
        self.backend = self._backend(compute)
        self.refs: dict[str, dict[str, str]] = {}
        for name, s in pipe.steps.items():
            try:
                self.refs[name] = s.ref()
            except InvalidValue:
                if self.backend is not None:
                    raise
        self.results: dict[str, StepResult] = {}
        self.values: dict[str, Any] = {}

    def _backend(self, compute: str | ComputeBackend | None) -> ComputeBackend | None:
        from mlops_sdk.compute.base import ComputeBackend

        if compute is None or isinstance(compute, ComputeBackend):
            return compute
        if not isinstance(compute, str):
            raise InvalidValue(f"compute must be None, a compute URI or a compute backend, got {type(compute).__name__}")
        if compute == self.ws.config.compute:
            return self.ws.compute
        from mlops_sdk.plugins import create_backend

        return create_backend("compute", compute, root=self.ws.root)  # type: ignore[no-any-return]

    # -- the pipeline run ---------------------------------------------------------------
    def run(self) -> PipelineResult:
        from mlops_sdk.pipeline import PipelineResult

        t0 = time.perf_counter()
        exp = self.ws.experiment(self.pipe.experiment)
        self.exp = exp
        tags = {"mlops.pipeline": self.pipe.name, "mlops.role": "pipeline"}
        if self.backend is not None:
            tags["mlops.compute"] = self.backend.uri
        with exp.start_run(name=self.pipe.name, params=self.given, tags=tags) as prun:
            self.prun = prun
            if self.backend is None:
                self._in_process()
            else:
                self._with_jobs()
            failed = [r for r in self.results.values() if r.status == "failed"]
            counts = {s: float(sum(r.status == s for r in self.results.values())) for s in ("ran", "cached", "failed", "skipped")}
            prun.log_metrics({f"steps_{s}": n for s, n in counts.items()})
            summary = {"pipeline": self.pipe.name, "order": self.pipe.order,
                       "steps": {n: r.to_dict() for n, r in self.results.items()}}
            prun.log_text(json.dumps(summary, indent=2), SUMMARY_ARTIFACT)
            if failed:
                error = "\n".join(f"step {r.name!r} failed:\n{r.error}" for r in failed)
                prun.end(RunStatus.FAILED, error)
        steps = {n: self.results[n] for n in self.pipe.order}
        return PipelineResult(self.pipe.name, prun.id, "FAILED" if failed else "FINISHED", steps, time.perf_counter() - t0)

    # -- shared per-step decisions ------------------------------------------------------
    def _prepare(self, name: str) -> tuple[str, dict[str, str]] | None:
        """Skip (upstream failed), take from the cache, or return (cache key, tags) to run it."""
        from mlops_sdk.pipeline import StepResult

        ups = self.pipe.inputs[name]
        bad = [u for u in ups if not self.results[u].ok]
        if bad:
            self.results[name] = StepResult(name, "skipped", error=f"upstream step {bad[0]!r} {self.results[bad[0]].status}")
            return None
        hashes = {u: self.results[u].output_hash or "" for u in ups}
        key = self.pipe.cache_key(name, self.params[name], hashes)
        if self.pipe.steps[name].cache and not self.force:
            t0 = time.perf_counter()
            hit = find_cached(self.ws, key)
            if hit is not None:
                self.results[name] = StepResult(name, "cached", run_id=hit.id, cache_key=key,
                                                output_hash=hit.tags["mlops.output_hash"],
                                                duration=time.perf_counter() - t0, workspace=self.ws)
                return None
        inputs = {u: {"run_id": self.results[u].run_id, "hash": hashes[u]} for u in ups}
        tags = {"mlops.pipeline": self.pipe.name, "mlops.role": "step", "mlops.step": name, "mlops.cache_key": key,
                "mlops.code_hash": self.pipe.steps[name].code_hash, "mlops.step.inputs": canonical_json(inputs)}
        if name in self.refs:
            tags["mlops.step.function"] = canonical_json(self.refs[name])
        return key, tags

    def _input_value(self, name: str) -> Any:
        if name not in self.values:
            self.values[name] = self.results[name].output
        return self.values[name]

    # -- in this process ----------------------------------------------------------------
    def _in_process(self) -> None:
        from mlops_sdk.pipeline import StepResult

        for name in self.pipe.order:
            prepared = self._prepare(name)
            if prepared is None:
                continue
            key, tags = prepared
            ups = self.pipe.inputs[name]
            logs = io.StringIO()
            t0 = time.perf_counter()
            run_id = None
            try:
                inputs = {u: self._input_value(u) for u in ups}
                with self.exp.start_run(name=name, params=self.params[name], tags=tags, parent=self.prun) as run:
                    run_id = run.id
                    value, digest = execute_body(run, self.pipe.steps[name], self.params[name], inputs,
                                                 [self.results[u].run_id or "" for u in ups], logs)
            except Exception as exc:
                error = "".join(traceback.format_exception(exc))
                self.results[name] = StepResult(name, "failed", run_id=run_id, cache_key=key, error=error,
                                                logs=logs.getvalue(), duration=time.perf_counter() - t0,
                                                exception=exc, workspace=self.ws)
                continue
            result = StepResult(name, "ran", run_id=run_id, cache_key=key, output_hash=digest, logs=logs.getvalue(),
                                duration=time.perf_counter() - t0, workspace=self.ws)
            result._set_output(value)
            self.values[name] = value
            self.results[name] = result

    # -- as compute jobs ----------------------------------------------------------------
    def _submit(self, name: str, tags: dict[str, str]) -> Job:
        from mlops_sdk.job import submit

        return submit(self.ws, execute_step_job, self.params[name], self.pipe.steps[name].resources,
                      experiment=self.exp.name, name=name, parent=self.prun, tags=tags, compute=self.backend)

    def _with_jobs(self) -> None:
        pending = list(self.pipe.order)
        running: dict[str, tuple[Job, str, float]] = {}
        try:
            while pending or running:
                progressed = True
                while progressed:
                    progressed = False
                    for name in list(pending):
                        if any(u not in self.results for u in self.pipe.inputs[name]):
                            continue
                        pending.remove(name)
                        progressed = True
                        prepared = self._prepare(name)
                        if prepared is not None:
                            running[name] = (self._submit(name, prepared[1]), prepared[0], time.perf_counter())
                for name, (job, key, t0) in list(running.items()):
                    if job.wait(POLL_SECONDS / max(1, len(running))).is_terminal:
                        del running[name]
                        self._collect(name, job, key, time.perf_counter() - t0)
        except BaseException:
            for job, _, _ in running.values():
                job.cancel()
            raise

    def _collect(self, name: str, job: Job, key: str, duration: float) -> None:
        from mlops_sdk.compute.base import JobState
        from mlops_sdk.pipeline import StepResult

        run_id = job.handle.run_id()
        if job.status is JobState.SUCCEEDED:
            result = job.result
            self.results[name] = StepResult(name, "ran", run_id=run_id, cache_key=key, output_hash=result["output_hash"],
                                            logs=job.logs(), duration=duration, workspace=self.ws)
            return
        error = None
        try:
            job.result  # noqa: B018 - raises JobError with the failure
        except JobError as exc:
            error = str(exc)
        if run_id is not None:
            record = self.ws.tracking.get_run(run_id)
            if not record.status.is_terminal:  # the job died without ending its run
                self.ws.tracking.end_run(run_id, RunStatus.FAILED, time.time(), f"the job ended ({job.status}) without ending its run")
            error = self.ws.tracking.get_run(run_id).error or error
        self.results[name] = StepResult(name, "failed", run_id=run_id, cache_key=key, error=error or "the job failed",
                                        logs=job.logs(), duration=duration, workspace=self.ws)
