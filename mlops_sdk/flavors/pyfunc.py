"""Plain Python models: a function, a class, or any object with ``predict``.

A module-level function or class is saved **by reference** (``"pkg.module:name"``):
loading imports it from the installed code, so nothing is unpickled. A class
is instantiated with no arguments when loaded. Lambdas, nested functions and
anything defined in ``__main__`` (a script, a notebook) cannot be imported
back, and other objects carry state that only pickle can keep: those are
saved as a pickle (cloudpickle if installed) with ``allow_pickle=True``, and
loading them needs ``allow_pickle=True`` too.

    >>> # mypkg/scoring.py:  def score(rows): return [len(r) for r in rows]
    >>> meta = PyfuncFlavor().save(mypkg.scoring.score, folder)     # doctest: +SKIP
    >>> meta["format"], meta["target"]                              # doctest: +SKIP
    ('reference', 'mypkg.scoring:score')
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from mlops_sdk.errors import FlavorError, UnsafeModel
from mlops_sdk.flavors._common import libraries, read_pickle, write_pickle
from mlops_sdk.flavors.base import Flavor

_TARGET = re.compile(
    r"(?P<module>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<qualname>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)"
)
_NOT_IMPORTABLE = frozenset({"__main__", "__mp_main__", "builtins", "__builtin__"})


class PyfuncFlavor(Flavor):
    """The fallback flavor: any callable, or any object with a ``predict`` method."""

    name = "pyfunc"
    priority = 0

    def recognizes(self, obj: Any) -> bool:
        return callable(obj) or callable(getattr(obj, "predict", None))

    def save(
        self, obj: Any, path: Path, *, input_example: Any = None, allow_pickle: bool = False
    ) -> dict[str, Any]:
        if not self.recognizes(obj):
            raise FlavorError(
                f"a pyfunc model must be callable or have a predict() method; got {type(obj).__qualname__}"
            )
        if inspect.isfunction(obj) or inspect.isclass(obj):
            problem = _reference_problem(obj)
            if problem is None:
                target = f"{obj.__module__}:{obj.__qualname__}"
                return {
                    "format": "reference",
                    "target": target,
                    "libraries": _distribution_of(obj.__module__),
                }
            what = f"{'class' if inspect.isclass(obj) else 'function'} {obj.__qualname__!r}"
            if not allow_pickle:
                raise FlavorError(
                    f"cannot save {what} by reference: {problem}. Move it into an importable module (a .py "
                    "file of your package), or pass allow_pickle=True to pickle it (loading it will then "
                    "need allow_pickle=True too)."
                )
        elif not allow_pickle:
            raise FlavorError(
                f"a {type(obj).__qualname__} object carries state that only pickle can save: pass "
                "allow_pickle=True to save it as a pickle (loading it will then need allow_pickle=True too), "
                "or register a flavor for its library"
            )
        meta = write_pickle(obj, Path(path))
        meta["libraries"] = libraries(meta["serializer"]) if meta["serializer"] != "pickle" else {}
        return meta

    def load(self, path: Path, meta: dict[str, Any], *, allow_pickle: bool = False) -> Any:
        fmt = meta.get("format")
        if fmt == "pickle":
            return read_pickle(
                Path(path), meta, allow_pickle=allow_pickle, what="this pyfunc model"
            )
        if fmt != "reference":
            raise FlavorError(
                f"unknown format {fmt!r} for a pyfunc model (expected 'reference' or 'pickle')"
            )
        return _resolve(str(meta.get("target", "")))

    def predict(self, model: Any, data: Any) -> Any:
        predict = getattr(model, "predict", None)
        if callable(predict):
            return predict(data)
        if callable(model):
            return model(data)
        raise FlavorError(
            f"{type(model).__qualname__} is neither callable nor has a predict() method"
        )


def _reference_problem(obj: Any) -> str | None:
    """Why ``obj`` cannot be imported back by name (None if it can)."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
    if not module or module in _NOT_IMPORTABLE:
        return (
            f"it is defined in {module or 'no module'}, which cannot be imported by another process"
        )
    if "<lambda>" in qualname:
        return "it is a lambda"
    if "<locals>" in qualname:
        return "it is defined inside a function"
    if _is_stdlib(module):
        return f"it belongs to the standard library ({module})"
    try:
        found = _lookup(module, qualname)
    except (ImportError, AttributeError) as exc:
        return f"{module}:{qualname} cannot be imported back ({exc})"
    if found is not obj:
        return f"{module}:{qualname} names a different object (is it decorated or reassigned?)"
    if inspect.isclass(obj) and not (callable(getattr(obj, "predict", None)) or _defines_call(obj)):
        return "a class saved by reference needs a predict() or __call__() method"
    return None


def _defines_call(cls: type) -> bool:
    return any("__call__" in vars(base) for base in cls.__mro__ if base is not object)


def _is_stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def _lookup(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _resolve(target: str) -> Any:
    match = _TARGET.fullmatch(target)
    if match is None:
        raise FlavorError(
            f"a pyfunc reference must look like 'package.module:name', got {target!r}"
        )
    module, qualname = match["module"], match["qualname"]
    if (
        module in _NOT_IMPORTABLE
        or _is_stdlib(module)
        or any(p.startswith("__") for p in qualname.split("."))
    ):
        raise UnsafeModel(
            f"refusing the pyfunc reference {target!r}: it does not name a model function or class"
        )
    try:
        obj = _lookup(module, qualname)
    except ImportError as exc:
        raise FlavorError(
            f"cannot import {module!r} for the pyfunc model {target!r}: {exc}; install the code that provides it"
        ) from exc
    except AttributeError as exc:
        raise FlavorError(f"{module!r} has no {qualname!r} (pyfunc model {target!r})") from exc
    if getattr(obj, "__module__", None) != module or not (
        inspect.isfunction(obj) or inspect.isclass(obj)
    ):
        raise UnsafeModel(
            f"refusing the pyfunc reference {target!r}: it is not a function or class defined in {module}"
        )
    if inspect.isclass(obj):
        try:
            return obj()
        except Exception as exc:
            raise FlavorError(
                f"could not create the pyfunc model {target!r} (called with no arguments): {exc}"
            ) from exc
    return obj


def _distribution_of(module: str) -> dict[str, str]:
    """``{distribution: version}`` of the installed package providing ``module`` (empty if none)."""
    top = module.split(".")[0]
    names = metadata.packages_distributions().get(top, [])
    return libraries(*names)
