"""Model flavors: how each kind of model is saved, loaded and asked to predict.

Flavors are registered by plugins (``register.flavor(name, "module:Class")``);
``sklearn``, ``torch`` and ``pyfunc`` are built in. :func:`flavor_for` picks the
flavor for an object; :func:`get_flavor` finds one by the name recorded with a
saved model.

    >>> from mlops_sdk.flavors import flavor_for, get_flavor
    >>> flavor_for(RandomForestClassifier()).name        # doctest: +SKIP
    'sklearn'
    >>> get_flavor("pyfunc").priority
    0

Choosing a flavor imports no machine-learning library the object does not
already come from.
"""

from __future__ import annotations

from typing import Any

from mlops_sdk.errors import FlavorError, PluginError
from mlops_sdk.flavors.base import Flavor


def _entries() -> Any:
    from mlops_sdk.plugins import get_plugin_manager

    return get_plugin_manager().registry.view("flavor")


def known_flavors() -> list[str]:
    """Names of every registered flavor, sorted.

    >>> "sklearn" in known_flavors()
    True
    """
    return sorted(_entries())


def _instantiate(entry: Any) -> Flavor:
    factory = entry.load()  # MissingDependency / PluginError name the plugin
    try:
        flavor = factory()
    except Exception as exc:
        raise PluginError(
            f"plugin {entry.plugin!r}: flavor {entry.scheme!r} could not be created: {exc}"
        ) from exc
    if not isinstance(flavor, Flavor):
        raise PluginError(
            f"plugin {entry.plugin!r} registered flavor {entry.scheme!r} as {entry.target_name!r}, "
            f"which is not a mlops_sdk.flavors.base.Flavor"
        )
    return flavor


def get_flavor(name: str) -> Flavor:
    """The flavor registered as ``name`` (``FlavorError`` listing the known ones if none is).

    >>> get_flavor("torch").name
    'torch'
    """
    entries = _entries()
    entry = entries.get(name) if isinstance(name, str) else None
    if entry is None:
        raise FlavorError(
            f"no model flavor is registered as {name!r}; known flavors: {', '.join(sorted(entries)) or 'none'}. "
            "Run `mlops plugins` to see what is installed."
        )
    return _instantiate(entry)


def flavor_for(obj: Any, name: str | None = None) -> Flavor:
    """The flavor that saves ``obj``: the one named, else the highest-priority one that recognises it.

    >>> flavor_for(len).name
    'pyfunc'
    """
    if name is not None:
        flavor = get_flavor(name)
        if not flavor.recognizes(obj):
            raise FlavorError(f"the {name!r} flavor cannot save a {_type_name(obj)}")
        return flavor
    entries = _entries()
    flavors = [_instantiate(entry) for entry in entries.values()]
    flavors.sort(key=lambda f: -f.priority)  # stable: registration order breaks ties
    for flavor in flavors:
        if flavor.recognizes(obj):
            return flavor
    raise FlavorError(
        f"no model flavor recognises a {_type_name(obj)}; known flavors: {', '.join(sorted(entries)) or 'none'}. "
        "Wrap it in an object with a predict() method, or register a flavor for it."
    )


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


__all__ = ["Flavor", "flavor_for", "get_flavor", "known_flavors"]
