"""Where a workspace's settings come from.

Precedence, highest first: arguments to :meth:`Workspace.open`, environment
variables (``MLOPS_TRACKING``, ``MLOPS_STORAGE``, ``MLOPS_COMPUTE``,
``MLOPS_DEPLOY``, ``MLOPS_FLUSH_INTERVAL``), ``mlops.toml``, the
``[tool.mlops]`` table of ``pyproject.toml``, then the embedded defaults
under ``./.mlops/``. The workspace root is the nearest folder, from the
current one upwards, holding ``mlops.toml``, a ``pyproject.toml`` with a
``[tool.mlops]`` table, or a ``.mlops/`` folder; otherwise the current folder.
Relative paths in URIs are relative to that root.
"""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Any

import attrs

from mlops_sdk.errors import ConfigError

DEFAULTS: dict[str, str] = {
    "tracking": "sqlite:///.mlops/tracking.db",
    "storage": "file://.mlops/store",
    "compute": "local",
    "deploy": "local",
}
URI_KEYS = tuple(DEFAULTS)
OTHER_KEYS = ("flush_interval",)
DEFAULT_FLUSH_INTERVAL = 0.5


@attrs.frozen
class WorkspaceConfig:
    """Resolved settings; ``sources`` says where each came from (for ``mlops`` diagnostics)."""

    root: Path
    tracking: str
    storage: str
    compute: str
    deploy: str
    flush_interval: float = DEFAULT_FLUSH_INTERVAL
    sources: dict[str, str] = attrs.field(factory=dict, eq=False)

    def uris(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in URI_KEYS}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def _file_settings(folder: Path) -> tuple[dict[str, Any], str] | None:
    mlops_toml = folder / "mlops.toml"
    if mlops_toml.is_file():
        return _read_toml(mlops_toml), str(mlops_toml)
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        table = _read_toml(pyproject).get("tool", {}).get("mlops")
        if isinstance(table, dict):
            return table, f"{pyproject} [tool.mlops]"
    return None


def find_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` with workspace settings or a ``.mlops/`` folder."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "mlops.toml").is_file() or (folder / ".mlops").is_dir():
            return folder
        if _file_settings(folder) is not None:
            return folder
    return start


def _flush_interval(value: Any, source: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"flush_interval from {source} must be a number of seconds, got {value!r}") from exc
    if not math.isfinite(number) or not 0 < number <= 60:
        raise ConfigError(f"flush_interval from {source} must be between 0 and 60 seconds, got {value!r}")
    return number


def resolve(path: str | os.PathLike[str] | None = None, **overrides: Any) -> WorkspaceConfig:
    """Resolve the settings of the workspace at ``path`` (default: found from the current folder)."""
    root = Path(path).resolve() if path is not None else find_root(Path.cwd())
    values: dict[str, Any] = dict(DEFAULTS)
    values["flush_interval"] = DEFAULT_FLUSH_INTERVAL
    sources = {k: "default" for k in values}

    found = _file_settings(root)
    if found is not None:
        settings, source = found
        unknown = sorted(set(settings) - set(URI_KEYS) - set(OTHER_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)} in {source}; "
                f"known: {', '.join(URI_KEYS + OTHER_KEYS)}"
            )
        for key, value in settings.items():
            values[key] = value
            sources[key] = source

    for key in (*URI_KEYS, *OTHER_KEYS):
        env = os.environ.get(f"MLOPS_{key.upper()}")
        if env:
            values[key] = env
            sources[key] = f"${'MLOPS_' + key.upper()}"

    for key, value in overrides.items():
        if key not in URI_KEYS and key not in OTHER_KEYS:
            raise ConfigError(f"unknown workspace setting {key!r}")
        if value is not None:
            values[key] = value
            sources[key] = "argument"

    for key in URI_KEYS:
        if not isinstance(values[key], str) or not values[key].strip():
            raise ConfigError(f"{key} URI from {sources[key]} must be a non-empty string, got {values[key]!r}")
        values[key] = values[key].strip()
    values["flush_interval"] = _flush_interval(values["flush_interval"], sources["flush_interval"])
    return WorkspaceConfig(root=root, sources=sources, **values)
