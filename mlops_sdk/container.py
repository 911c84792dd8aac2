"""Docker build contexts that serve one model version (``mlops models build-context NAME@V DIR``).

>>> ctx = build_context(ws.model("churn-clf").version(3), "build/churn")   # doctest: +SKIP
>>> # docker build -t churn-clf:3 build/churn && docker run -p 8080:8080 churn-clf:3

The folder holds:

* ``Dockerfile``: the base image, ``pip install -r requirements.txt``, the
  model workspace, a non-root user (uid 10001), ``EXPOSE``, a ``HEALTHCHECK``
  that asks ``/health``, and ``CMD mlops --workspace /app/model serve NAME@V
  --host 0.0.0.0 --port PORT``.
* ``requirements.txt``: pinned lines: mlops-sdk's own version (or the
  requirement given, a wheel file is copied into ``wheels/``), the model
  server's libraries, and the model's requirements and flavor libraries.
  PyTorch comes from the CPU wheel index (``--extra-index-url``).
* ``model/``: a self-contained workspace (``mlops.toml``, SQLite registry,
  content-addressed files) holding just this version, under the same name and
  number, content id, flavor metadata, signature and card text. The files are
  copied verified and re-hashed on the way, so the copy's id equals the
  original's; nothing is unpickled or re-saved.
* ``.dockerignore``: keeps caches and editor files out of the image.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from mlops_sdk.errors import IntegrityError, InvalidValue

if TYPE_CHECKING:
    from mlops_sdk.model import ModelVersion
    from mlops_sdk.workspace import Workspace

DEFAULT_BASE_IMAGE = "python:3.11-slim"
DEFAULT_PORT = 8080
APP_DIR = "/app"
MODEL_DIR = "model"
WHEELS_DIR = "wheels"
USER_ID = 10001
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: the model server's own libraries (imported by ``mlops serve``)
SERVER_PACKAGES = ("starlette", "uvicorn")
#: what a tabular signature needs to coerce requests
TABULAR_PACKAGES = ("pandas", "numpy")
WORKSPACE_TOML = 'tracking = "sqlite:///.mlops/tracking.db"\nstorage = "file://.mlops/store"\n'
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}")
_REQ_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@attrs.frozen
class BuildContext:
    """What :func:`build_context` wrote."""

    path: Path
    model: str
    version: int
    image_ref: str  # NAME@V, what the image serves
    base_image: str
    port: int
    requirements: tuple[str, ...]

    @property
    def dockerfile(self) -> Path:
        return self.path / "Dockerfile"

    @property
    def model_workspace(self) -> Path:
        return self.path / MODEL_DIR


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(line: str) -> str:
    match = _REQ_NAME.match(line)
    return _norm(match.group(1)) if match else ""


def _pin(dist: str) -> str:
    version = _installed(dist)
    return f"{dist}=={version}" if version else dist


def _strip_local(line: str) -> str:
    """``torch==2.13.0+cu121`` → ``torch==2.13.0`` (the CPU index serves ``+cpu`` builds of the same release)."""
    return re.sub(r"(==\s*[0-9][^+;\s]*)\+[A-Za-z0-9.]+", r"\1", line)


def requirements_for(mv: ModelVersion, sdk_requirement: str | None = None) -> list[str]:
    """Pinned requirement lines for an image serving ``mv`` (no index options; see :func:`requirements_text`)."""
    from mlops_sdk import __version__

    lines: list[str] = [sdk_requirement or f"mlops-sdk=={__version__}"]
    seen = {"mlops-sdk"}

    def add(line: str) -> None:
        line = line.strip()
        name = _req_name(line)
        if not line or not name or name in seen:
            return
        if any(c in line for c in "\n\r"):
            raise InvalidValue(f"{mv.label} records a requirement with a line break: {line!r}")
        seen.add(name)
        lines.append(_strip_local(line) if name == "torch" else line)

    for dist in SERVER_PACKAGES:
        add(_pin(dist))
    for line in mv.requirements:
        add(line)
    for lib, version in mv.libraries.items():
        add(f"{lib}=={version}" if version else lib)
    signature = mv.signature
    if signature is None or signature.is_tabular:
        for dist in TABULAR_PACKAGES:
            add(_pin(dist))
    return lines


def requirements_text(lines: list[str]) -> str:
    head = ["# Written by `mlops models build-context`: pins for the model server image."]
    if any(_req_name(line) == "torch" for line in lines):
        head += [
            "# PyTorch: the CPU build (no CUDA libraries in the image).",
            f"--extra-index-url {TORCH_CPU_INDEX}",
        ]
    return "\n".join([*head, *lines]) + "\n"


def dockerfile_text(name: str, version: int, base_image: str, port: int, *, wheels: bool = False) -> str:
    ref = f"{name}@{version}"
    cmd = ["mlops", "--workspace", f"{APP_DIR}/{MODEL_DIR}", "serve", ref, "--host", "0.0.0.0", "--port", str(port)]
    probe = (
        "import sys, urllib.request; "
        f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=4).status == 200 else 1)"
    )
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# Serves model {ref} with `mlops serve`. Written by `mlops models build-context`.",
        f"FROM {base_image}",
        "",
        "ENV PYTHONDONTWRITEBYTECODE=1 \\",
        "    PYTHONUNBUFFERED=1 \\",
        "    PIP_NO_CACHE_DIR=1 \\",
        "    PIP_DISABLE_PIP_VERSION_CHECK=1",
        "",
        f"RUN useradd --create-home --uid {USER_ID} --user-group mlops",
        f"WORKDIR {APP_DIR}",
        "",
        "COPY requirements.txt ./",
    ]
    if wheels:
        lines.append(f"COPY {WHEELS_DIR}/ ./{WHEELS_DIR}/")
    lines += [
        "RUN pip install --no-cache-dir -r requirements.txt",
        "",
        f"COPY --chown={USER_ID}:{USER_ID} {MODEL_DIR}/ ./{MODEL_DIR}/",
        f"USER {USER_ID}:{USER_ID}",
        "",
        f"EXPOSE {port}",
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \\",
        f"    CMD {json.dumps(['python', '-c', probe])}",
        f"CMD {json.dumps(cmd)}",
    ]
    return "\n".join(lines) + "\n"


DOCKERIGNORE = "\n".join(
    [
        "# Written by `mlops models build-context`.",
        f"{MODEL_DIR}/.mlops/cache",
        "**/__pycache__",
        "**/*.pyc",
        "**/.DS_Store",
        "",
    ]
)


def copy_version(mv: ModelVersion, dest: Workspace) -> ModelVersion:
    """Register ``mv``, files and record, in workspace ``dest`` under the same name, number and content id.

    The files are read from ``mv``'s verified local folder and stored again in
    ``dest``'s object store, which hashes them: a digest that differs from the
    manifest's raises :class:`~mlops_sdk.errors.IntegrityError`. The copy has no
    run (the run stays in the source workspace); its tags say where it came from.
    """
    from mlops_sdk.model import KIND, ModelVersion

    manifest = mv.manifest
    folder = mv.local_path()
    for entry in manifest:
        digest, size = dest.objects.put_file(folder / entry.path)
        if digest != entry.digest or size != entry.size:
            raise IntegrityError(f"{mv.label}: file {entry.path!r} changed while it was copied")
    tags = dict(mv.tags)
    tags.setdefault("mlops.source_id", mv.id)
    if mv.run_id:
        tags.setdefault("mlops.source_run", mv.run_id)
    record, _ = dest.tracking.create_version(
        KIND,
        mv.name,
        id=manifest.id,
        manifest=manifest.to_bytes(),
        message=mv.description,
        tags=tags,
        meta=dict(mv.meta),
        run_id=None,
        created_at=mv.created_at,
        number=mv.version,
    )
    for alias in mv.aliases:
        dest.tracking.set_alias(KIND, mv.name, alias, mv.version)
    return ModelVersion(dest, record, manifest)


def _check_dest(mv: ModelVersion, dest: Path, force: bool) -> None:
    from mlops_sdk.dataset import _own_folders

    resolved = dest.resolve()
    for own in _own_folders(mv.workspace):
        if own.is_relative_to(resolved) or resolved.is_relative_to(own):
            raise InvalidValue(f"cannot write a build context into {dest}: it holds the workspace's own files ({own})")
    if dest.exists() and not dest.is_dir():
        raise InvalidValue(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()):
        if not force:
            raise InvalidValue(f"{dest} is not empty; pick an empty folder (or pass force=True / --force to replace it)")
        ours = {"Dockerfile", "requirements.txt", ".dockerignore", MODEL_DIR, WHEELS_DIR}
        strangers = sorted(p.name for p in dest.iterdir() if p.name not in ours)
        if strangers:
            raise InvalidValue(f"{dest} holds files a build context does not write ({', '.join(strangers[:5])}); refusing to replace it")


def build_context(
    mv: ModelVersion,
    dest: str | Path,
    *,
    base_image: str = DEFAULT_BASE_IMAGE,
    port: int = DEFAULT_PORT,
    sdk_requirement: str | None = None,
    force: bool = False,
) -> BuildContext:
    """Write a Docker build context serving ``mv`` into ``dest`` (see the module doc).

    ``sdk_requirement`` replaces the ``mlops-sdk==<version>`` line: another
    requirement (``mlops-sdk @ git+https://…``), or the path of a wheel file,
    which is copied into the context. ``force`` replaces an earlier context.
    """
    from mlops_sdk.workspace import Workspace

    if not isinstance(base_image, str) or not _IMAGE.fullmatch(base_image):
        raise InvalidValue(f"base image {base_image!r} is not an image reference (like python:3.11-slim)")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidValue(f"port must be a number from 1 to 65535, got {port!r}")
    wheel: Path | None = None
    if sdk_requirement is not None:
        if not isinstance(sdk_requirement, str) or not sdk_requirement.strip() or any(c in sdk_requirement for c in "\n\r"):
            raise InvalidValue(f"sdk_requirement must be one requirement line or a wheel path, got {sdk_requirement!r}")
        if sdk_requirement.endswith(".whl"):
            wheel = Path(sdk_requirement)
            if not wheel.is_file():
                raise InvalidValue(f"wheel {sdk_requirement} does not exist")
    dest = Path(dest)
    _check_dest(mv, dest, force)
    lines = requirements_for(
        mv, f"./{WHEELS_DIR}/{wheel.name}" if wheel is not None else sdk_requirement
    )

    if dest.is_dir():
        for child in dest.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        model_root = dest / MODEL_DIR
        model_root.mkdir()
        (model_root / "mlops.toml").write_text(WORKSPACE_TOML)
        with Workspace.open(model_root, tracking="sqlite:///.mlops/tracking.db", storage="file://.mlops/store") as target:
            copy_version(mv, target)
        shutil.rmtree(model_root / ".mlops" / "cache", ignore_errors=True)
        if wheel is not None:
            (dest / WHEELS_DIR).mkdir()
            shutil.copy2(wheel, dest / WHEELS_DIR / wheel.name)
        (dest / "requirements.txt").write_text(requirements_text(lines))
        (dest / "Dockerfile").write_text(
            dockerfile_text(mv.name, mv.version, base_image, port, wheels=wheel is not None)
        )
        (dest / ".dockerignore").write_text(DOCKERIGNORE)
    except BaseException:
        for child in list(dest.iterdir()):  # leave no half-written context behind
            with contextlib.suppress(OSError):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return BuildContext(
        path=dest,
        model=mv.name,
        version=mv.version,
        image_ref=f"{mv.name}@{mv.version}",
        base_image=base_image,
        port=port,
        requirements=tuple(lines),
    )


__all__ = ["BuildContext", "build_context", "copy_version", "dockerfile_text", "requirements_for"]
