"""The model-flavor interface: how one kind of model is saved, loaded and asked to predict.

Flavors are plugins (``register.flavor(name, "module:attr")`` in
``mlops_register_backends``); the built-ins ``sklearn``, ``torch`` and
``pyfunc`` are registered by :mod:`mlops_sdk.builtin` the same way. A flavor
never loads pickles unless the caller passed ``allow_pickle=True``: it raises
:class:`mlops_sdk.errors.UnsafeModel` instead.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any


class Flavor(abc.ABC):
    """Saves and loads one kind of model. Instances are stateless."""

    #: the name recorded with every saved model (``sklearn``, ``torch``, ``pyfunc``…)
    name: str = ""
    #: when several flavors recognise an object, the highest priority wins (pyfunc is the fallback: 0)
    priority: int = 10

    @abc.abstractmethod
    def recognizes(self, obj: Any) -> bool:
        """Whether this flavor can save ``obj``. Must not import heavy libraries the object's module has not."""

    @abc.abstractmethod
    def save(self, obj: Any, path: Path, *, input_example: Any = None, allow_pickle: bool = False) -> dict[str, Any]:
        """Write the model's files into the empty folder ``path``; return JSON metadata for :meth:`load`.

        The metadata records the library versions (``{"libraries": {"scikit-learn": "1.9.1"}}``)
        and the serialization used (``{"format": "skops"}``).
        """

    @abc.abstractmethod
    def load(self, path: Path, meta: dict[str, Any], *, allow_pickle: bool = False) -> Any:
        """Rebuild the native model object from ``path`` (files already verified by hash)."""

    @abc.abstractmethod
    def predict(self, model: Any, data: Any) -> Any:
        """Run the loaded model on ``data`` (already checked against the signature)."""

    def requirements(self, meta: dict[str, Any]) -> list[str]:
        """pip requirement lines needed to load the model (``scikit-learn==1.9.1``)."""
        return [f"{lib}=={version}" for lib, version in sorted(meta.get("libraries", {}).items())]
