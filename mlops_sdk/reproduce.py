"""Re-execute a recorded run and compare its metrics: ``mlops runs reproduce RUN_ID``.

A run records its git commit (and uncommitted diff), its command line and
working folder, the dataset versions it used and its metrics. :func:`reproduce`
turns that record back into an execution:

1. **code**: ``git worktree add --detach <tmp> <commit>`` in the repository
   the run recorded (or the one given); a run made from a dirty tree gets its
   recorded diff applied, and is refused when the diff was not captured in
   full, unless ``allow_dirty=True`` (then the clean commit runs).
2. **data**: every dataset version the run used is checked out into
   ``<worktree>/.mlops-datasets/<name>/`` (or the path given in ``datasets``);
   the mapping name → folder is passed to the command as JSON in
   ``$MLOPS_REPRODUCE_DATASETS`` (read it with :func:`dataset_path`).
3. **command**: the recorded ``argv`` runs in the worktree, in the folder
   matching the recorded working folder, with this Python
   (``sys.executable``) for Python scripts, and ``MLOPS_TRACKING`` /
   ``MLOPS_STORAGE`` pointing at this workspace, so the new run lands next to
   the original. ``$MLOPS_REPRODUCES`` holds the original run id; the new run
   is found by the attempt id it records in its context and tagged
   ``mlops.reproduces=<original id>``.
4. **compare**: each metric's latest value, original against new, within a
   relative tolerance (default 1e-6).

Only the standard library is imported here; the worktree is removed
afterwards unless ``keep=True``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mlops_sdk.errors import InvalidValue, NotReproducible
from mlops_sdk.records import RunStatus

if TYPE_CHECKING:
    from mlops_sdk.records import RunRecord
    from mlops_sdk.workspace import Workspace

ENV_REPRODUCES = "MLOPS_REPRODUCES"
"""Set for the re-executed command: the id of the run being reproduced."""
ENV_ATTEMPT = "MLOPS_REPRODUCE_ATTEMPT"
"""Set for the re-executed command: a fresh id per attempt, recorded in the new run's context."""
ENV_DATASETS = "MLOPS_REPRODUCE_DATASETS"
"""Set for the re-executed command: JSON ``{dataset name: folder}`` of the restored dataset versions."""
TAG_REPRODUCES = "mlops.reproduces"
DATASETS_FOLDER = ".mlops-datasets"
DEFAULT_TOLERANCE = 1e-6
MAX_LOG_CHARS = 200_000
KILL_GRACE_S = 10.0
# Environment variables of the original run that shape results and are restored when recorded.
_RESTORED_ENV = frozenset({"MLOPS_EXPERIMENT", "MLOPS_PLUGINS", "PYTHONHASHSEED"})
_RESTORED_ENV_PREFIXES = ("OMP_", "MKL_")
_REDACTED = "***REDACTED***"


# -- results ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricDiff:
    """One metric of the original run against the reproduction (``None``: the run lacks it)."""

    key: str
    original: float | None
    new: float | None
    abs_diff: float | None
    rel_diff: float | None
    matched: bool


@dataclass
class ReproducePlan:
    """What :func:`reproduce` does, decided before anything runs (``dry_run`` stops here)."""

    run_id: str
    run_name: str
    experiment_id: str
    repo: str
    commit: str
    branch: str | None
    dirty: bool
    apply_diff: bool
    cwd: str
    """The working folder relative to the repository root (``.`` for the root)."""
    command: list[str]
    """The command as it will run; ``{worktree}`` stands for the temporary worktree."""
    datasets: list[dict[str, Any]] = field(default_factory=list)
    """Per dataset: name, version, id and the folder (relative to the worktree) it is restored into."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables set for the command (URIs with passwords redacted)."""
    warnings: list[str] = field(default_factory=list)
    step: dict[str, str] | None = None
    """For a pipeline step run: ``{"pipeline": …, "step": …}`` (the pipeline is re-run, every step forced)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReproduceResult:
    """The outcome: which run reproduced which, and how their metrics compare."""

    original_run_id: str
    new_run_id: str | None
    commit: str
    command: list[str]
    metrics: list[MetricDiff]
    matched: bool
    logs: str
    plan: ReproducePlan
    dry_run: bool = False
    returncode: int | None = None
    timed_out: bool = False
    new_status: str | None = None
    worktree: str | None = None
    """The worktree's path when it was kept (``keep=True``), else None."""
    tolerance: float = DEFAULT_TOLERANCE
    problems: list[str] = field(default_factory=list)
    """Why ``matched`` is False, beyond differing metrics (command failed, no new run…)."""

    @property
    def differences(self) -> list[MetricDiff]:
        return [row for row in self.metrics if not row.matched]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["logs"] = self.logs[-20_000:]
        return data


# -- the helper re-executed scripts may call -------------------------------------------------
def dataset_path(name: str, default: str | os.PathLike[str] | None = None) -> str | None:
    """Where ``mlops runs reproduce`` restored dataset ``name``, or ``default`` outside a reproduction.

    >>> data_dir = dataset_path("iris", default="data/iris")   # doctest: +SKIP
    """
    raw = os.environ.get(ENV_DATASETS)
    if raw:
        try:
            mapping = json.loads(raw)
        except ValueError:
            mapping = {}
        if isinstance(mapping, dict) and isinstance(mapping.get(name), str):
            return str(mapping[name])
    return None if default is None else os.fspath(default)


# -- comparison ------------------------------------------------------------------------------
def compare_metrics(
    original: Mapping[str, float],
    new: Mapping[str, float],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    abs_tolerance: float = 0.0,
) -> list[MetricDiff]:
    """Row per metric key of either run; NaN matches NaN, a metric only one run has never matches."""
    _check_tolerance("tolerance", tolerance)
    _check_tolerance("abs_tolerance", abs_tolerance)
    rows = []
    for key in sorted(set(original) | set(new)):
        a = original.get(key)
        b = new.get(key)
        if a is None or b is None:
            rows.append(MetricDiff(key, a, b, None, None, False))
            continue
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            rows.append(MetricDiff(key, a, b, None, None, math.isnan(a) and math.isnan(b)))
            continue
        if math.isinf(a) or math.isinf(b):
            rows.append(MetricDiff(key, a, b, None, None, a == b))
            continue
        diff = abs(b - a)
        rel = diff / abs(a) if a != 0 else (0.0 if diff == 0 else math.inf)
        rows.append(MetricDiff(key, a, b, diff, rel, math.isclose(a, b, rel_tol=tolerance, abs_tol=abs_tolerance)))
    return rows


def _check_tolerance(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidValue(f"{name} must be a finite number >= 0, got {value!r}")


# -- git -------------------------------------------------------------------------------------
def _git(cwd: str | os.PathLike[str], *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, input=input, capture_output=True, text=True, timeout=120, check=False
        )
    except FileNotFoundError as exc:
        raise NotReproducible("git is not installed (or not on PATH); it is needed to check out the recorded commit") from exc
    except subprocess.TimeoutExpired as exc:
        raise NotReproducible(f"git {' '.join(args)} took over 120 s in {cwd}") from exc


def _repo_root(path: str | os.PathLike[str]) -> str | None:
    if not Path(path).is_dir():
        return None
    out = _git(path, "rev-parse", "--show-toplevel")
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _has_commit(repo: str, commit: str) -> bool:
    return _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def _find_repo(commit: str, candidates: Sequence[str | os.PathLike[str] | None]) -> tuple[str | None, list[str]]:
    """The first candidate that is a git repository holding ``commit``; also the repositories tried."""
    tried: list[str] = []
    for candidate in candidates:
        if candidate is None:
            continue
        root = _repo_root(candidate)
        if root is None or root in tried:
            continue
        tried.append(root)
        if _has_commit(root, commit):
            return root, tried
    return None, tried


# -- planning --------------------------------------------------------------------------------
def _section(context: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = context.get(name)
    return value if isinstance(value, Mapping) else {}


def _under(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` (POSIX), or None when it is not inside."""
    if path == root:
        return "."
    prefix = root.rstrip("/") + "/"
    if path.startswith(prefix):
        return path[len(prefix):]
    return None


def _map_arg(arg: str, roots: Sequence[str]) -> str:
    """An argument naming a path inside the original repository, pointed into the worktree."""

    def one(value: str) -> str:
        for root in roots:
            rel = _under(value, root)
            if rel is not None:
                return "{worktree}" if rel == "." else "{worktree}/" + rel
        return value

    if arg.startswith("-") and "=" in arg:
        name, value = arg.split("=", 1)
        return f"{name}={one(value)}"
    return one(arg)


def _blob(repo: str, commit: str, rel: str) -> bytes | None:
    """The first bytes of file ``rel`` at ``commit``, or None when the commit has no such file."""
    rel = os.path.normpath(rel).replace(os.sep, "/")
    if rel.startswith("../") or rel == "..":
        return None
    try:
        out = subprocess.run(
            ["git", "cat-file", "blob", f"{commit}:{rel}"], cwd=repo, capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout[:200] if out.returncode == 0 else None


def _looks_python(name: str, head: bytes) -> bool:
    if name.endswith((".py", ".pyw")):
        return True
    first = head.split(b"\n", 1)[0]
    return first.startswith(b"#!") and b"python" in first


def _module_name(repo: str, commit: str, rel_script: str, rel_cwd: str) -> str | None:
    """``pkg.mod`` when the script is a module of a package under the working folder (a ``python -m`` run)."""
    rel = _under(rel_script, rel_cwd) if rel_cwd != "." else rel_script
    if rel is None or not rel.endswith(".py"):
        return None
    parts = PurePosixPath(rel).with_suffix("").parts
    if len(parts) < 2:
        return None
    base = "" if rel_cwd == "." else rel_cwd + "/"
    for depth in range(1, len(parts)):
        if _blob(repo, commit, base + "/".join(parts[:depth]) + "/__init__.py") is None:
            return None
    return ".".join(parts)


def _command(
    command: Mapping[str, Any], roots: Sequence[str], repo: str, commit: str, rel_cwd: str, run_id: str
) -> tuple[list[str], list[str]]:
    """The command to run (with ``{worktree}`` placeholders) and warnings about it."""
    warnings: list[str] = []
    argv = command.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise NotReproducible(f"run {run_id} recorded no command line, so there is nothing to re-execute")
    first = argv[0]
    name = os.path.basename(first).lower()
    if first in ("", "-", "-c") or "ipykernel" in name or name.startswith(("ipython", "jupyter")) or "pydevconsole" in name:
        how = "python -c" if first == "-c" else "a notebook or an interactive session"
        raise NotReproducible(
            f"run {run_id} was started from {how} ({first or 'no script'}); only runs started by a "
            "command (python script.py …, a console script) can be re-executed"
        )
    if any(_REDACTED in a for a in argv):
        raise NotReproducible(
            f"run {run_id}'s command line held secret values, which were redacted when it was recorded; "
            "run the command by hand in a checkout of the recorded commit"
        )
    orig = command.get("orig_argv")
    if (
        isinstance(orig, list)
        and len(orig) > 1
        and all(isinstance(a, str) for a in orig)
        and os.path.basename(orig[0]).lower().startswith("python")
    ):
        return [sys.executable, *(_map_arg(a, roots) for a in orig[1:])], warnings
    mapped = [_map_arg(a, roots) for a in argv]
    if os.path.isabs(first):
        rel_script = next((r for r in (_under(first, root) for root in roots) if r is not None), None)
    else:
        rel_script = os.path.normpath(os.path.join(rel_cwd, first)).replace(os.sep, "/")
        if rel_script.startswith("../"):
            rel_script = None
    if rel_script is None:  # a program outside the repository: a console script, an installed tool
        if not os.path.exists(first):
            raise NotReproducible(f"run {run_id} ran {first}, which does not exist here")
        try:
            with open(first, "rb") as f:
                head = f.read(200)
        except OSError:
            head = b""
        if _looks_python(first, head):
            return [sys.executable, first, *mapped[1:]], warnings
        warnings.append(f"{first} is not a Python script: it runs as it is, not with {sys.executable}")
        return mapped, warnings
    head_or_none = _blob(repo, commit, rel_script)
    if head_or_none is None:
        raise NotReproducible(
            f"run {run_id} ran {first}, but commit {commit[:12]} has no file {rel_script} (was it committed?)"
        )
    if os.path.isabs(first):
        module = _module_name(repo, commit, rel_script, rel_cwd)
        if module is not None:
            warnings.append(f"{first} is a module of a package: running it as python -m {module}")
            return [sys.executable, "-m", module, *mapped[1:]], warnings
    if not _looks_python(rel_script, head_or_none):
        warnings.append(f"{first} is not a Python script: it runs as it is, not with {sys.executable}")
        return mapped, warnings
    return [sys.executable, *mapped], warnings


def _absolute_uri(uri: str, root: Path) -> str:
    """``uri`` with a path relative to the workspace root made absolute (sqlite, file)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if path in ("", ":memory:") or Path(path).is_absolute():
            return uri
        return f"sqlite:///{(root / path).resolve()}"
    if scheme == "file":
        if Path(rest).is_absolute():
            return uri
        return f"file://{(root / rest).resolve()}"
    return uri


def plan(
    ws: Workspace,
    run_id: str,
    *,
    allow_dirty: bool = False,
    repo: str | os.PathLike[str] | None = None,
    datasets: Mapping[str, str] | None = None,
) -> ReproducePlan:
    """Check that ``run_id`` can be reproduced and decide how, changing nothing.

    Raises :class:`~mlops_sdk.errors.RunNotFound`, or
    :class:`~mlops_sdk.errors.NotReproducible` saying why the record is not enough.
    """
    from mlops_sdk.redact import redact_uri

    record = ws.get_run(run_id).record
    return _plan(ws, record, allow_dirty=allow_dirty, repo=repo, datasets=datasets, redact=redact_uri)


def _plan(
    ws: Workspace,
    record: RunRecord,
    *,
    allow_dirty: bool,
    repo: str | os.PathLike[str] | None,
    datasets: Mapping[str, str] | None,
    redact: Callable[[str], str],
) -> ReproducePlan:
    context = record.context
    rid = record.id
    warnings: list[str] = []
    tags = record.tags
    step: dict[str, str] | None = None
    extra_env: dict[str, str] = {}
    if "mlops.pipeline" in tags or "mlops.step" in tags:
        step, context, extra_env = _step_source(ws, record)
    if str(record.status) == "RUNNING":
        warnings.append(f"run {rid} is still RUNNING: its metrics may be incomplete")
    elif str(record.status) != "FINISHED":
        warnings.append(f"run {rid} ended {record.status}: the reproduction is compared with what it logged")

    models = sorted(k.removeprefix("mlops.model.") for k in tags if k.startswith("mlops.model."))
    if models:
        warnings.append(f"run {rid} registered model(s) {', '.join(models)}: the reproduction registers new versions")

    git = _section(context, "git")
    commit = git.get("commit")
    if not git or not isinstance(commit, str) or not commit:
        raise NotReproducible(
            f"run {rid} recorded no git commit (it did not run inside a git repository, or the repository had "
            "no commit yet), so its code cannot be checked out"
        )
    recorded_root = git.get("root") if isinstance(git.get("root"), str) else None
    candidates: list[str | os.PathLike[str] | None] = [repo] if repo is not None else [recorded_root, ws.root, os.getcwd()]
    found, tried = _find_repo(commit, candidates)
    if found is None:
        where = ", ".join(tried) if tried else "no git repository found"
        hint = "" if repo is not None else " (pass the repository with repo=/--repo, or fetch the commit)"
        raise NotReproducible(f"run {rid}'s commit {commit} is not in the repository ({where}){hint}")

    dirty = bool(git.get("dirty"))
    apply_diff = False
    if dirty:
        diff = git.get("diff")
        if isinstance(diff, str) and diff.strip() and not git.get("diff_truncated"):
            apply_diff = True
        elif allow_dirty:
            why = "was truncated (over 1 MiB)" if git.get("diff_truncated") else "was not captured"
            warnings.append(f"run {rid} ran with uncommitted changes whose diff {why}: running the clean commit instead")
        else:
            why = "was truncated (over 1 MiB)" if git.get("diff_truncated") else "was not captured"
            raise NotReproducible(
                f"run {rid} ran with uncommitted changes and the recorded diff {why}, so its exact code cannot be "
                "restored; pass allow_dirty=True (--allow-dirty) to run the clean commit instead"
            )

    command = _section(context, "command")
    cwd = command.get("cwd") if isinstance(command.get("cwd"), str) else None
    roots = [r for r in dict.fromkeys([recorded_root, found]) if isinstance(r, str)]
    rel_cwd = "."
    if cwd is not None:
        for root in roots:
            rel = _under(os.path.realpath(cwd), os.path.realpath(root)) or _under(cwd, root)
            if rel is not None:
                rel_cwd = rel
                break
        else:
            warnings.append(f"the recorded working folder {cwd} is outside the repository: running from its root")
    argv, notes = _command(command, roots, found, commit, rel_cwd, rid)
    warnings.extend(notes)

    python = _section(context, "python")
    if python.get("version") and python.get("version") != _python_version():
        warnings.append(f"run {rid} ran on Python {python.get('version')}; this is Python {_python_version()}")
    warnings.extend(_package_warnings(_section(context, "packages")))

    restored = _dataset_plan(ws, rid, datasets)
    env = {
        ENV_REPRODUCES: rid,
        ENV_DATASETS: json.dumps({d["name"]: "{worktree}/" + d["path"] for d in restored}),
        "MLOPS_TRACKING": redact(_absolute_uri(ws.config.tracking, ws.root)),
        "MLOPS_STORAGE": redact(_absolute_uri(ws.config.storage, ws.root)),
    }
    env.update(_restored_env(_section(context, "env")))
    env.update(extra_env)
    return ReproducePlan(
        run_id=rid,
        run_name=record.name,
        experiment_id=record.experiment_id,
        repo=found,
        commit=commit,
        branch=git.get("branch") if isinstance(git.get("branch"), str) else None,
        dirty=dirty,
        apply_diff=apply_diff,
        cwd=rel_cwd,
        command=argv,
        datasets=restored,
        env=env,
        warnings=warnings,
        step=step,
    )


def _step_source(ws: Workspace, record: RunRecord) -> tuple[dict[str, str], Mapping[str, Any], dict[str, str]]:
    """For a pipeline step run: the step, the record of the command that ran the pipeline, and the env forcing it.

    Re-executing a step means running its pipeline again with the recorded
    params and every step forced (a cached step would start no run). That
    needs ``mlops_sdk.pipeline.FORCE_ENV``: the environment variable with which
    ``Pipeline.run`` runs every step.
    """
    tags = record.tags
    pipeline, name = tags.get("mlops.pipeline", "?"), tags.get("mlops.step")
    if tags.get("mlops.role") == "pipeline" or name is None:
        raise NotReproducible(
            f"run {record.id} is the run of pipeline {pipeline!r} itself; reproduce one of its step runs instead"
        )
    import mlops_sdk.pipeline as _pipeline

    force_env = getattr(_pipeline, "FORCE_ENV", None)
    if not isinstance(force_env, str):
        raise NotReproducible(
            f"run {record.id} is step {name!r} of pipeline {pipeline!r}; re-executing a pipeline step needs a "
            "pipeline that can be forced from the environment, which this version of mlops_sdk.pipeline cannot: "
            "run the pipeline again with its recorded params and pipeline.run(..., force=True)"
        )
    context: Mapping[str, Any] = record.context
    if record.parent_id is not None:  # the pipeline's own run recorded the command that ran it
        context = ws.get_run(record.parent_id).record.context
    return {"pipeline": pipeline, "step": name}, context, {force_env: "1"}


def _python_version() -> str:
    import platform

    return platform.python_version()


def _package_warnings(recorded: Mapping[str, Any]) -> list[str]:
    if not recorded:
        return []
    from mlops_sdk.context import packages

    current = {k.lower(): v for k, v in packages().items()}
    changed = []
    for name, version in recorded.items():
        if version == _REDACTED:  # a name with a secret word in it (google-auth): its version was not kept
            continue
        now = current.get(str(name).lower())
        if now != version:
            changed.append(f"{name} {version} -> {now or 'not installed'}")
    if not changed:
        return []
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return [f"{len(changed)} installed package(s) differ from the original run: {shown}"]


def _restored_env(recorded: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in recorded.items():
        if not isinstance(value, str) or value == _REDACTED:
            continue
        if key in _RESTORED_ENV or key.startswith(_RESTORED_ENV_PREFIXES):
            out[key] = value
    return out


def _dataset_plan(ws: Workspace, rid: str, overrides: Mapping[str, str] | None) -> list[dict[str, Any]]:
    from mlops_sdk.errors import NotFound
    from mlops_sdk.validation import validate_relpath

    edges = [e for e in ws.tracking.lineage(run_id=rid, kind="dataset") if e.role == "input"]
    names = {e.name for e in edges}
    for name, path in (overrides or {}).items():
        if name not in names:
            raise InvalidValue(f"run {rid} used no dataset {name!r} (it used: {', '.join(sorted(names)) or 'none'})")
        validate_relpath(f"folder for dataset {name!r}", path)
    out = []
    for edge in sorted(edges, key=lambda e: (e.name, e.version)):
        try:
            record = ws.tracking.get_version("dataset", edge.name, edge.version)
        except NotFound as exc:
            raise NotReproducible(f"run {rid} used dataset {edge.name} v{edge.version}, which is gone: {exc}") from exc
        path = (overrides or {}).get(edge.name) or f"{DATASETS_FOLDER}/{edge.name}"
        if sum(1 for e in edges if e.name == edge.name) > 1:
            path = f"{path}/v{edge.version}"
        out.append({"name": edge.name, "version": edge.version, "id": record.id, "path": path.strip("/")})
    return out


# -- running ---------------------------------------------------------------------------------
def reproduce(
    ws: Workspace,
    run_id: str,
    *,
    dry_run: bool = False,
    keep: bool = False,
    timeout: float | None = None,
    allow_dirty: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    abs_tolerance: float = 0.0,
    repo: str | os.PathLike[str] | None = None,
    datasets: Mapping[str, str] | None = None,
    on_output: Callable[[str], None] | None = None,
) -> ReproduceResult:
    """Re-execute run ``run_id`` from its record and compare the new run's metrics with it.

    ``dry_run`` only plans (and checks) the reproduction. ``keep`` leaves the
    temporary worktree in place (its path is in the result). ``timeout``
    (seconds) stops the command: SIGTERM, then SIGKILL. ``tolerance`` is the
    relative difference a metric may have and still match (``abs_tolerance``
    the absolute one). ``repo`` is the git repository holding the commit
    (default: the one the run recorded, else the workspace's or the current
    one's). ``datasets`` maps a dataset name to the folder, relative to the
    worktree root, to restore it into (default ``.mlops-datasets/<name>``).
    ``on_output`` receives the command's output line by line as it runs.

    >>> result = reproduce(ws, run.id)        # doctest: +SKIP
    >>> result.matched, result.new_run_id     # doctest: +SKIP
    (True, '3f2a…')
    """
    from mlops_sdk.redact import redact_uri

    _check_tolerance("tolerance", tolerance)
    _check_tolerance("abs_tolerance", abs_tolerance)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
        raise InvalidValue(f"timeout must be a number of seconds > 0, got {timeout!r}")
    original = ws.get_run(run_id).record
    the_plan = _plan(ws, original, allow_dirty=allow_dirty, repo=repo, datasets=datasets, redact=redact_uri)
    result = ReproduceResult(
        original_run_id=original.id,
        new_run_id=None,
        commit=the_plan.commit,
        command=list(the_plan.command),
        metrics=[],
        matched=False,
        logs="",
        plan=the_plan,
        dry_run=dry_run,
        tolerance=tolerance,
    )
    if dry_run:
        return result

    parent = Path(tempfile.mkdtemp(prefix="mlops-reproduce-"))
    worktree = parent / (Path(the_plan.repo).name or "src")
    created = False
    try:
        added = _git(the_plan.repo, "worktree", "add", "--detach", str(worktree), the_plan.commit)
        if added.returncode != 0:
            raise NotReproducible(f"git worktree add failed for commit {the_plan.commit}: {added.stderr.strip()}")
        created = True
        if the_plan.apply_diff:
            diff = str(original.context["git"]["diff"])
            applied = _git(worktree, "apply", "--whitespace=nowarn", "-", input=diff if diff.endswith("\n") else diff + "\n")
            if applied.returncode != 0:
                raise NotReproducible(
                    f"the recorded uncommitted diff of run {original.id} does not apply to commit "
                    f"{the_plan.commit}: {applied.stderr.strip()}"
                )
        _restore_datasets(ws, the_plan, worktree)
        _execute(ws, original, the_plan, worktree, result, timeout, on_output)
        if keep:
            result.worktree = str(worktree)
    finally:
        if not keep or not created:
            _remove_worktree(the_plan.repo, worktree, parent, created)

    new_metrics: Mapping[str, float] = {}
    if result.new_run_id is not None:
        new_metrics = ws.get_run(result.new_run_id).record.metrics
    result.metrics = compare_metrics(original.metrics, new_metrics, tolerance=tolerance, abs_tolerance=abs_tolerance)
    if result.timed_out:
        result.problems.append(f"the command ran past the {timeout} s timeout and was stopped")
    elif result.returncode != 0:
        result.problems.append(f"the command exited with code {result.returncode}")
    if result.new_run_id is None:
        result.problems.append("the command started no run in this workspace")
    elif result.new_status != "FINISHED":
        result.problems.append(f"the new run {result.new_run_id} ended {result.new_status}")
    result.matched = not result.problems and all(row.matched for row in result.metrics)
    return result


def _restore_datasets(ws: Workspace, the_plan: ReproducePlan, worktree: Path) -> None:
    from mlops_sdk.dataset import DatasetVersion

    for item in the_plan.datasets:
        dsv = DatasetVersion(ws, ws.tracking.get_version("dataset", item["name"], item["version"]))
        dsv.checkout(worktree / item["path"], force=True)


def _child_env(ws: Workspace, the_plan: ReproducePlan, worktree: Path, attempt: str) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in the_plan.env.items():
        env[key] = value.replace("{worktree}", str(worktree))
    # the plan shows URIs redacted; the command gets the real ones
    env["MLOPS_TRACKING"] = _absolute_uri(ws.config.tracking, ws.root)
    env["MLOPS_STORAGE"] = _absolute_uri(ws.config.storage, ws.root)
    env[ENV_ATTEMPT] = attempt
    # code of the worktree wins over an editable install of the original checkout
    paths = [str(worktree / "src")] if (worktree / "src").is_dir() else []
    paths.append(str(worktree))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _execute(
    ws: Workspace,
    original: RunRecord,
    the_plan: ReproducePlan,
    worktree: Path,
    result: ReproduceResult,
    timeout: float | None,
    on_output: Callable[[str], None] | None,
) -> None:
    from mlops_sdk.query import parse_filter

    attempt = uuid.uuid4().hex
    cmd = [a.replace("{worktree}", str(worktree)) for a in the_plan.command]
    cwd = worktree / the_plan.cwd
    if not cwd.is_dir():
        raise NotReproducible(f"the recorded working folder {the_plan.cwd} does not exist at commit {the_plan.commit}")
    env = _child_env(ws, the_plan, worktree, attempt)
    lines: list[str] = []
    size = 0
    started = time.time()
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=os.name == "posix",
        )
    except OSError as exc:
        raise NotReproducible(f"cannot start {cmd[0]}: {exc}") from exc

    def read() -> None:
        nonlocal size
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            size += len(line)
            while size > MAX_LOG_CHARS and len(lines) > 1:
                size -= len(lines.pop(0))
            if on_output is not None:
                with contextlib.suppress(Exception):  # a broken callback must not stop the reproduction
                    on_output(line.rstrip("\n"))

    reader = threading.Thread(target=read, name="mlops-reproduce-output", daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        result.timed_out = True
        _stop(proc)
    except BaseException:
        _stop(proc)
        raise
    finally:
        reader.join(timeout=5)
        result.logs = "".join(lines)
    result.returncode = proc.returncode

    # the runs this attempt made carry its id in their recorded environment
    records = ws.tracking.search_runs(None, parse_filter(f"start_time >= {started - 60}"))
    mine = [r for r in records if _section(r.context, "env").get(ENV_ATTEMPT) == attempt]
    ended = time.time()
    for record in mine:
        if str(record.status) == "RUNNING":  # the command was killed before it could end its run
            why = "timed out" if result.timed_out else f"exited with code {proc.returncode}"
            ws.tracking.end_run(record.id, RunStatus.KILLED, ended, f"mlops runs reproduce: the command {why} while the run was active")
    new = _pick_new_run(original, mine, the_plan.step)
    if new is not None:
        from mlops_sdk.records import WriteBatch

        ws.tracking.write_batch(WriteBatch(tags=[(new.id, TAG_REPRODUCES, original.id)]))
        result.new_run_id = new.id
        result.new_status = str(ws.tracking.get_run(new.id).status)


def _pick_new_run(
    original: RunRecord, candidates: Sequence[RunRecord], step: Mapping[str, str] | None = None
) -> RunRecord | None:
    """The run of this attempt that stands for the original: same experiment and name, else the first top-level one.

    For a pipeline step, only a run of the same step of the same pipeline.
    """
    if step is not None:
        candidates = [
            r for r in candidates
            if r.tags.get("mlops.pipeline") == step["pipeline"] and r.tags.get("mlops.step") == step["step"]
        ]
    if not candidates:
        return None
    ordered = sorted(candidates, key=lambda r: r.start_time)
    top_level = original.parent_id is None
    tests: list[Callable[[RunRecord], bool]] = [
        lambda r: r.experiment_id == original.experiment_id and r.name == original.name,
        lambda r: r.experiment_id == original.experiment_id and (r.parent_id is None) == top_level,
        lambda r: r.parent_id is None,
    ]
    for test in tests:
        for record in ordered:
            if test(record):
                return record
    return ordered[0]


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the command's process group (its runs end KILLED), then SIGKILL after a grace period."""
    if proc.poll() is not None:
        return
    _signal(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        _signal(proc, signal.SIGKILL)
        proc.wait()


def _signal(proc: subprocess.Popen[str], sig: int) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def _remove_worktree(repo: str, worktree: Path, parent: Path, created: bool) -> None:
    if created:
        _git(repo, "worktree", "remove", "--force", "--force", str(worktree))
    shutil.rmtree(parent, ignore_errors=True)
    if created:
        _git(repo, "worktree", "prune")


__all__ = [
    "DEFAULT_TOLERANCE",
    "ENV_ATTEMPT",
    "ENV_DATASETS",
    "ENV_REPRODUCES",
    "TAG_REPRODUCES",
    "MetricDiff",
    "ReproducePlan",
    "ReproduceResult",
    "compare_metrics",
    "dataset_path",
    "plan",
    "reproduce",
]
