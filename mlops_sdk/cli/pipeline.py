"""``mlops pipeline``: run a pipeline, show which steps are cached, draw its DAG.

A pipeline is named as ``MODULE:NAME`` (``pkg.flows:pipe``, imported with the
current folder on ``sys.path``) or ``path/to/file.py:NAME``. Without ``:NAME``
the module must hold exactly one :class:`~mlops_sdk.pipeline.Pipeline`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlops_sdk.cli.output import echo_json, json_option, note, print_table
from mlops_sdk.cli.state import get_workspace

if TYPE_CHECKING:
    from types import ModuleType

    from mlops_sdk.pipeline import Pipeline

FORMATS = ("text", "dot", "mermaid", "svg", "png")


def _import_file(path: Path) -> ModuleType:
    from mlops_sdk.errors import PipelineError
    from mlops_sdk.steps import FILE_MODULE_PREFIX

    path = path.resolve()
    if not path.is_file():
        raise PipelineError(f"no pipeline file {path}")
    name = FILE_MODULE_PREFIX + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PipelineError(f"cannot import {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_pipeline(target: str) -> Pipeline:
    """The Pipeline named by ``MODULE[:NAME]`` or ``path/to/file.py[:NAME]``."""
    from mlops_sdk.errors import MlopsError, PipelineError
    from mlops_sdk.pipeline import Pipeline

    where, attr = target, ""
    head, sep, tail = target.rpartition(":")
    if sep and head and tail and "/" not in tail and "\\" not in tail:
        where, attr = head, tail
    try:
        if where.endswith(".py") or os.sep in where or "/" in where:
            module = _import_file(Path(where))
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(where)
    except MlopsError:
        raise
    except Exception as exc:
        raise PipelineError(f"could not import {where!r}: {type(exc).__name__}: {exc}") from exc
    if attr:
        obj: Any = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise PipelineError(f"{where!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        if not isinstance(obj, Pipeline):
            raise PipelineError(f"{where}:{attr} is a {type(obj).__name__}, not an mlops Pipeline")
        return obj
    found = [v for v in vars(module).values() if isinstance(v, Pipeline)]
    if len(found) != 1:
        names = ", ".join(k for k, v in vars(module).items() if isinstance(v, Pipeline)) or "none"
        raise PipelineError(f"{where!r} holds {len(found)} pipelines ({names}); name one as {where}:NAME")
    return found[0]


def parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    """``("C=0.5", "name=iris")`` → ``{"C": 0.5, "name": "iris"}`` (values are JSON if they parse, else text)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--param")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def _short(run_id: str | None) -> str | None:
    return run_id[:8] if run_id else None


param_option = click.option(
    "--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
    help="Set a param (JSON value, else text); STEP.KEY sets it in one step only. Repeatable.",
)


@click.group("pipeline")
def pipeline_group() -> None:
    """Run pipelines, see which steps are cached, draw their DAG."""


@pipeline_group.command("run")
@click.argument("target", metavar="MODULE:PIPELINE")
@param_option
@click.option("--force", is_flag=True, help="Run every step, even those whose cache key matches an earlier run.")
@click.option("--compute", metavar="URI", help="Run each step as a job on this compute backend (default: in this process).")
@json_option
def run_cmd(target: str, params: tuple[str, ...], force: bool, compute: str | None, as_json: bool) -> None:
    """Run a pipeline; steps whose code, params and inputs are unchanged are cached.

    Exits 1 when a step failed (its dependants are skipped; run again to resume).
    """
    pipe = load_pipeline(target)
    values = parse_params(params)
    ws = get_workspace()
    with contextlib.redirect_stdout(sys.stderr):  # what steps print must not mix with the data on stdout
        result = pipe.run(params=values, compute=compute, force=force, workspace=ws)
    if as_json:
        echo_json(result.to_dict())
    else:
        rows = [(r.name, r.status, _short(r.run_id), round(r.duration, 3)) for r in result.steps.values()]
        print_table(["step", "status", "run", "seconds"], rows,
                    title=f"pipeline {pipe.name}: {result.status} (run {result.run_id})")
    for r in result.steps.values():
        if r.status == "failed":
            if not as_json and r.logs.strip():
                note(f"--- logs of step {r.name} ---\n{r.logs.rstrip()}")
            note(f"--- error of step {r.name} (run {r.run_id}) ---\n{(r.error or '').rstrip()}")
    if not result.ok:
        failed = [r.name for r in result.steps.values() if r.status == "failed"]
        click.echo(f"error: step {', '.join(failed)} of pipeline {pipe.name!r} failed; fix it and run again to resume", err=True)
        click.get_current_context().exit(1)


@pipeline_group.command("status")
@click.argument("target", metavar="MODULE:PIPELINE")
@param_option
@json_option
def status_cmd(target: str, params: tuple[str, ...], as_json: bool) -> None:
    """Per step: would the next run reuse it (cached) or run it (stale, and why)? And its last run."""
    pipe = load_pipeline(target)
    statuses = pipe.status(parse_params(params), workspace=get_workspace())
    if as_json:
        echo_json({"pipeline": pipe.name, "steps": [
            {"name": s.name, "state": s.state, "reason": s.reason, "cache_key": s.cache_key,
             "last_run_id": s.last_run_id, "last_status": s.last_status} for s in statuses]})
        return
    rows = [(s.name, s.state, s.reason, _short(s.last_run_id), s.last_status) for s in statuses]
    print_table(["step", "state", "why", "last run", "last status"], rows, title=f"pipeline {pipe.name}")


@pipeline_group.command("dag")
@click.argument("target", metavar="MODULE:PIPELINE")
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text (a tree), dot (Graphviz), mermaid, or an svg/png picture (needs matplotlib).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write to this file instead of stdout.")
def dag_cmd(target: str, fmt: str, output: str | None) -> None:
    """Draw the pipeline's DAG."""
    pipe = load_pipeline(target)
    if fmt in ("svg", "png"):
        from mlops_sdk.dag import render_image

        if output is None:
            raise click.UsageError(f"--format {fmt} writes a picture: give a file with -o FILE")
        render_image(pipe.inputs, output, fmt, pipe.labels())
        note(f"wrote {output}")
        return
    text = pipe.dag(fmt)
    if output is None:
        click.echo(text.rstrip("\n"))
    else:
        Path(output).write_text(text if text.endswith("\n") else text + "\n")
        note(f"wrote {output}")
