"""scikit-learn models, saved with skops (no pickle) and loaded under our own trust policy.

skops writes a model as a zip of JSON and ``.npy`` arrays; rebuilding it only
touches the types the file names. Which types may be rebuilt is decided here,
not by the file: everything skops itself trusts, plus the types in
:func:`is_trusted_type` (scikit-learn, numpy and scipy, minus the corners of
those packages that read files or run code). A file naming anything else is
refused with :class:`~mlops_sdk.errors.UnsafeModel` before anything is built.

A model that needs other types (a ``FunctionTransformer`` around your own
function, an estimator from another package) can only be saved as a pickle,
with ``allow_pickle=True``; loading it then needs ``allow_pickle=True`` too.

    >>> from mlops_sdk.flavors import get_flavor
    >>> flavor = get_flavor("sklearn")
    >>> meta = flavor.save(clf, folder)                      # doctest: +SKIP
    >>> flavor.predict(flavor.load(folder, meta), X[:3])     # doctest: +SKIP
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from mlops_sdk.errors import FlavorError, UnsafeModel
from mlops_sdk.flavors._common import comes_from, libraries, read_pickle, require, write_pickle
from mlops_sdk.flavors.base import Flavor

SKOPS_FILE = "model.skops"
INSTALL = "'mlops-sdk[sklearn]'  (scikit-learn and skops)"

#: packages whose types (beyond skops' own defaults) a model file may name
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")
#: plain data types from builtins (never functions such as eval or exec)
TRUSTED_BUILTINS = frozenset(
    f"builtins.{name}"
    for name in (
        "bool",
        "int",
        "float",
        "complex",
        "str",
        "bytes",
        "bytearray",
        "list",
        "tuple",
        "dict",
        "set",
        "frozenset",
        "slice",
        "range",
        "NoneType",
    )
)
#: name parts that mark file access, code execution or test helpers inside the trusted packages
DENIED_PARTS = frozenset(
    {
        "testing",
        "_testing",
        "externals",
        "f2py",
        "distutils",
        "ctypeslib",
        "npyio",
        "_npyio_impl",
        "io",
        "_io",
        "memmap",
        "load",
        "loads",
        "loadtxt",
        "genfromtxt",
        "fromfile",
        "tofile",
        "save",
        "savez",
        "savez_compressed",
        "savetxt",
        "pickle",
        "_pickle",
        "eval",
        "exec",
        "compile",
        "system",
        "runstring",
    }
)
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


def is_trusted_type(name: str) -> bool:
    """Whether our policy lets a skops file rebuild the type or function ``name``.

    >>> is_trusted_type("sklearn.tree._tree.Tree"), is_trusted_type("builtins.eval")
    (True, False)
    """
    if not _DOTTED.fullmatch(name):
        return False
    if name in TRUSTED_BUILTINS:
        return True
    if not name.startswith(TRUSTED_PREFIXES):
        return False
    return not (set(name.split(".")) & DENIED_PARTS)


_audited: dict[str, list[str]] = {}  # sha256 of a skops file -> the types it lists (same bytes, same answer)


def audit(data: bytes, source: object) -> tuple[list[str], list[str]]:
    """The types a skops file names beyond skops' defaults, and those our policy refuses."""
    import hashlib

    key = hashlib.sha256(data).hexdigest()  # ~1 ms for a 100-tree forest; the walk below is ~50 ms
    listed = _audited.get(key)
    if listed is None:
        sio = require("skops.io", "sklearn", INSTALL)
        try:
            listed = list(sio.get_untrusted_types(data=data))
        except Exception as exc:  # not a skops zip, or an unreadable schema
            raise FlavorError(f"{source} is not a readable skops model file: {exc}") from exc
        _audited[key] = listed
    return list(listed), [name for name in listed if not is_trusted_type(name)]


class SklearnFlavor(Flavor):
    """scikit-learn estimators and pipelines (anything derived from ``sklearn.base.BaseEstimator``)."""

    name = "sklearn"
    priority = 20

    def recognizes(self, obj: Any) -> bool:
        if not comes_from(obj, "sklearn"):  # sklearn cannot be imported for nothing
            return False
        from sklearn.base import BaseEstimator

        return isinstance(obj, BaseEstimator)

    def save(
        self, obj: Any, path: Path, *, input_example: Any = None, allow_pickle: bool = False
    ) -> dict[str, Any]:
        sio = require("skops.io", self.name, INSTALL)
        require("sklearn", self.name, INSTALL)
        file = Path(path) / SKOPS_FILE
        try:
            sio.dump(obj, file)
            _, refused = audit(file.read_bytes(), file)
            reason = (
                f"it holds types outside the trusted policy: {', '.join(refused)}"
                if refused
                else ""
            )
        except Exception as exc:  # skops cannot represent some object inside the model
            reason = f"skops could not save it: {exc}"
        if not reason:
            return {
                "format": "skops",
                "file": SKOPS_FILE,
                "libraries": libraries("scikit-learn", "numpy", "scipy", "skops"),
            }
        file.unlink(missing_ok=True)
        if not allow_pickle:
            raise FlavorError(
                f"cannot save {type(obj).__qualname__} safely with skops: {reason}. Pass allow_pickle=True "
                "to save it as a pickle instead (loading it will then need allow_pickle=True too)."
            )
        meta = write_pickle(obj, Path(path))
        meta["reason"] = reason
        meta["libraries"] = libraries("scikit-learn", "numpy", "scipy", meta["serializer"])
        return meta

    def load(self, path: Path, meta: dict[str, Any], *, allow_pickle: bool = False) -> Any:
        fmt = meta.get("format")
        if fmt == "pickle":
            return read_pickle(
                Path(path), meta, allow_pickle=allow_pickle, what="this scikit-learn model"
            )
        if fmt != "skops":
            raise FlavorError(
                f"unknown format {fmt!r} for a scikit-learn model (expected 'skops' or 'pickle')"
            )
        sio = require("skops.io", self.name, INSTALL)
        file = Path(path) / SKOPS_FILE
        if not file.is_file():
            raise FlavorError(f"{SKOPS_FILE} is missing from {path}")
        data = file.read_bytes()  # audited and loaded from the same bytes
        listed, refused = audit(data, file)
        if refused:
            raise UnsafeModel(
                f"{file} names types outside the trusted policy ({', '.join(refused)}); refusing to load it, "
                "since rebuilding them could run arbitrary code. Only scikit-learn, numpy and scipy types "
                "are trusted."
            )
        try:
            return sio.load(
                io.BytesIO(data), trusted=listed
            )  # every listed type is inside the policy
        except Exception as exc:
            raise FlavorError(f"could not load the scikit-learn model in {file}: {exc}") from exc

    def predict(self, model: Any, data: Any) -> Any:
        for method in ("predict", "transform"):
            fn = getattr(model, method, None)
            if callable(fn):
                return fn(data)
        raise FlavorError(f"{type(model).__qualname__} has neither predict() nor transform()")
