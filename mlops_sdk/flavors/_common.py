"""Helpers the built-in flavors share: optional imports, versions, the pickle opt-in."""

from __future__ import annotations

import importlib
import pickle
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from mlops_sdk.errors import FlavorError, MissingDependency, UnsafeModel

PICKLE_FILE = "model.pkl"


def require(module: str, flavor: str, install: str) -> ModuleType:
    """Import an optional dependency of a flavor, or say what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"the {flavor} model flavor needs {module.split('.')[0]} ({exc}): pip install {install}"
        ) from exc


def version(distribution: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def public_version(text: str) -> str:
    """``2.13.0+cpu`` → ``2.13.0`` (a requirement without a local label matches every build)."""
    return text.split("+", 1)[0]


def libraries(*distributions: str) -> dict[str, str]:
    """``{distribution: version}`` for those installed."""
    found = {name: version(name) for name in distributions}
    return {name: public_version(v) for name, v in found.items() if v is not None}


def mro_modules(obj: Any) -> set[str]:
    """Top-level package of every class in ``type(obj)``'s MRO (``{"sklearn", "builtins"}``)."""
    return {(getattr(cls, "__module__", None) or "").split(".")[0] for cls in type(obj).__mro__}


def comes_from(obj: Any, package: str) -> bool:
    """Whether ``obj``'s class or one of its bases is defined in ``package``, without importing it."""
    return package in sys.modules and package in mro_modules(obj)


def pickle_refused(what: str) -> UnsafeModel:
    return UnsafeModel(
        f"{what} was saved as a pickle; loading it runs whatever code the file names. "
        "Pass allow_pickle=True only if you trust where the model came from."
    )


def write_pickle(obj: Any, path: Path) -> dict[str, Any]:
    """Pickle ``obj`` to ``path/model.pkl`` (cloudpickle when installed); returns the metadata."""
    serializer: Any
    try:
        serializer, name = importlib.import_module("cloudpickle"), "cloudpickle"
    except ImportError:
        serializer, name = pickle, "pickle"
    try:
        with open(path / PICKLE_FILE, "wb") as f:
            serializer.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise FlavorError(f"could not pickle {type(obj).__qualname__}: {exc}") from exc
    return {"format": "pickle", "file": PICKLE_FILE, "serializer": name}


def read_pickle(path: Path, meta: dict[str, Any], *, allow_pickle: bool, what: str) -> Any:
    """Unpickle ``path/model.pkl``; refuses with UnsafeModel unless ``allow_pickle``."""
    if not allow_pickle:
        raise pickle_refused(what)
    if meta.get("serializer") == "cloudpickle":
        require("cloudpickle", "pickled", "cloudpickle")  # its objects may need it to rebuild
    try:
        with open(path / PICKLE_FILE, "rb") as f:
            return pickle.load(f)
    except FileNotFoundError as exc:
        raise FlavorError(f"{what}: {PICKLE_FILE} is missing from {path}") from exc
    except Exception as exc:  # a class that moved, a library that is not installed…
        raise FlavorError(f"{what}: could not unpickle {PICKLE_FILE}: {exc!r}") from exc
