"""Plugin manager, discovery, and the registry of backends by URI scheme.

Plugins are modules or objects with :data:`mlops_sdk.hookspecs.hookimpl`
functions, found through the ``mlops_sdk`` entry point group. ``MLOPS_PLUGINS``
(comma-separated entry point names) restricts which installed plugins load;
set it to an empty string to load only the built-ins. A plugin that fails to
import or to register is named in a :class:`~mlops_sdk.errors.PluginError`;
nothing is silently skipped.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

import attrs
import pluggy

from mlops_sdk import hookspecs
from mlops_sdk.errors import MissingDependency, PluginError, UnknownScheme

ENTRY_POINT_GROUP = "mlops_sdk"
BUILTIN_PLUGINS = ("mlops_sdk.builtin",)
KINDS = ("tracking", "storage", "compute", "deployer", "source", "flavor")

Factory = Callable[..., Any]


@attrs.frozen
class BackendEntry:
    """One registered scheme: which plugin provides it and how to build it."""

    kind: str
    scheme: str
    target: str | Factory = attrs.field(repr=lambda t: t if isinstance(t, str) else getattr(t, "__qualname__", repr(t)))
    plugin: str
    requires: str = ""
    description: str = ""

    @property
    def target_name(self) -> str:
        t = self.target
        return t if isinstance(t, str) else f"{t.__module__}:{getattr(t, '__qualname__', t)}"

    def load(self) -> Factory:
        """Import the factory (on first use), naming the package to install if that fails."""
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = f": pip install {self.requires}" if self.requires else ""
            raise MissingDependency(
                f"{self.kind} backend {self.scheme!r} (plugin {self.plugin!r}) could not be "
                f"imported ({exc}){hint}"
            ) from exc
        try:
            obj = module
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except AttributeError as exc:
            raise PluginError(
                f"plugin {self.plugin!r} registered {self.kind} backend {self.scheme!r} as "
                f"{self.target!r}, which does not exist"
            ) from exc
        return obj  # type: ignore[return-value]


class BackendRegistry:
    """Schemes per backend kind. Read through :meth:`view`; written only by :class:`Registrar`."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, BackendEntry]] = {kind: {} for kind in KINDS}

    def add(self, entry: BackendEntry, *, clobber: bool = False) -> None:
        table = self._entries[entry.kind]
        old = table.get(entry.scheme)
        if old is not None and not clobber:
            raise PluginError(
                f"plugin {entry.plugin!r} registers {entry.kind} scheme {entry.scheme!r}, "
                f"already provided by plugin {old.plugin!r}; pass clobber=True to replace it"
            )
        table[entry.scheme] = entry

    def view(self, kind: str) -> Mapping[str, BackendEntry]:
        """A read-only mapping of scheme to entry for one kind."""
        return MappingProxyType(self._entries[kind])

    def entries(self) -> Iterator[BackendEntry]:
        for kind in KINDS:
            yield from self._entries[kind].values()

    def lookup(self, kind: str, uri: str) -> BackendEntry:
        """Find the entry for ``uri``'s scheme (``postgresql+psycopg`` falls back to ``postgresql``)."""
        scheme = scheme_of(uri)
        table = self._entries[kind]
        entry = table.get(scheme) or table.get(scheme.split("+", 1)[0])
        if entry is None:
            known = ", ".join(sorted(table)) or "none"
            raise UnknownScheme(
                f"no installed plugin provides a {kind} backend for {scheme!r} (in {uri!r}); "
                f"known {kind} schemes: {known}. Run `mlops plugins` to see what is installed."
            )
        return entry


def scheme_of(uri: str) -> str:
    """``sqlite:///x`` → ``sqlite``; ``local`` → ``local``; ``mlflow+http://h`` → ``mlflow+http``."""
    scheme, sep, _ = uri.partition("://")
    if not sep:
        scheme = uri.partition(":")[0] if ":" in uri else uri
    return scheme.lower()


class Registrar:
    """What ``mlops_register_backends(register)`` receives: one method per backend kind."""

    def __init__(self, registry: BackendRegistry, plugin: str) -> None:
        self._registry = registry
        self._plugin = plugin

    def _add(self, kind: str, scheme: str, factory: str | Factory, requires: str, description: str, clobber: bool) -> None:
        if not isinstance(scheme, str) or not scheme or "://" in scheme:
            raise PluginError(f"plugin {self._plugin!r} registered an invalid {kind} scheme {scheme!r}")
        if not (isinstance(factory, str) and ":" in factory) and not callable(factory):
            raise PluginError(
                f"plugin {self._plugin!r}: factory for {kind} scheme {scheme!r} must be a callable "
                f"or a 'module:attribute' string, got {factory!r}"
            )
        self._registry.add(
            BackendEntry(kind, scheme.lower(), factory, self._plugin, requires, description),
            clobber=clobber,
        )

    def tracking(self, scheme: str, factory: str | Factory, *, requires: str = "", description: str = "", clobber: bool = False) -> None:
        """Register a tracking store (``mlops_sdk.tracking.base.TrackingStore``)."""
        self._add("tracking", scheme, factory, requires, description, clobber)

    def storage(self, scheme: str, factory: str | Factory, *, requires: str = "", description: str = "", clobber: bool = False) -> None:
        """Register a blob storage (``mlops_sdk.storage.base.Storage``)."""
        self._add("storage", scheme, factory, requires, description, clobber)

    def compute(self, scheme: str, factory: str | Factory, *, requires: str = "", description: str = "", clobber: bool = False) -> None:
        """Register a compute backend (``mlops_sdk.compute.base.ComputeBackend``)."""
        self._add("compute", scheme, factory, requires, description, clobber)

    def deployer(self, scheme: str, factory: str | Factory, *, requires: str = "", description: str = "", clobber: bool = False) -> None:
        """Register a deployer (``mlops_sdk.deploy.base.Deployer``)."""
        self._add("deployer", scheme, factory, requires, description, clobber)

    def source(self, scheme: str, factory: str | Factory, *, requires: str = "", description: str = "", clobber: bool = False) -> None:
        """Register a reader of data versioned elsewhere (``mlops_sdk.storage.datasets.DatasetSource``).

        Dataset versions whose ``source`` names this scheme (``{"type": scheme, ...}``)
        are read through it: DVC-tracked data in a Git repository, for example.
        """
        self._add("source", scheme, factory, requires, description, clobber)

    def flavor(self, name: str, factory: str | Factory, *, requires: str = "", description: str = "", clobber: bool = False) -> None:
        """Register a model flavor (``mlops_sdk.flavors.base.Flavor``): how a kind of model is saved and loaded."""
        self._add("flavor", name, factory, requires, description, clobber)


@attrs.frozen
class PluginInfo:
    """An installed plugin as shown by ``mlops plugins``."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    builtin: bool


class PluginManager:
    """Loads plugins once per process and keeps the backend registry they fill."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        for spec in hookspecs.SPEC_CLASSES:
            self.pm.add_hookspecs(spec)
        self.infos: dict[str, PluginInfo] = {}
        self._registry: BackendRegistry | None = None
        self._load(load_entry_points)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def _register(self, obj: object, info: PluginInfo) -> None:
        try:
            self.pm.register(obj, name=info.name)
        except Exception as exc:  # pluggy raises ValueError/PluginValidationError
            raise PluginError(f'Error registering plugin "{info.name}": {exc}') from exc
        self.infos[info.name] = info

    def _load(self, load_entry_points: bool) -> None:
        from importlib.metadata import entry_points

        eps = list(entry_points(group=ENTRY_POINT_GROUP)) if load_entry_points else []
        eps.sort(key=lambda ep: ep.value not in BUILTIN_PLUGINS)  # built-ins first (stable)
        allowed_env = os.environ.get("MLOPS_PLUGINS")
        allowed = None if allowed_env is None else {n.strip() for n in allowed_env.split(",") if n.strip()}
        seen_modules: set[str] = set()
        for ep in eps:
            builtin = ep.value in BUILTIN_PLUGINS
            if not builtin and allowed is not None and ep.name not in allowed:
                continue
            try:
                obj = ep.load()
            except Exception as exc:
                raise PluginError(f'Error importing plugin "{ep.name}" ({ep.value}): {exc}') from exc
            dist = ep.dist
            seen_modules.add(ep.value)
            self._register(
                obj,
                PluginInfo(ep.name, ep.value, dist.name if dist else None, dist.version if dist else None, builtin),
            )
        # A source checkout that is not pip-installed has no entry points:
        # the built-ins are still registered, through the same manager.
        for module_name in BUILTIN_PLUGINS:
            if module_name not in seen_modules:
                module = importlib.import_module(module_name)
                self._register(module, PluginInfo("local", module_name, "mlops-sdk", None, True))
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"a plugin implements a hook that does not exist: {exc}") from exc

    def register(self, obj: object, name: str) -> None:
        """Register a plugin object by hand (tests, notebooks); resets the backend registry."""
        self._register(obj, PluginInfo(name, getattr(obj, "__name__", type(obj).__name__), None, None, False))
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(obj)
            del self.infos[name]
            raise PluginError(f'plugin "{name}" implements a hook that does not exist: {exc}') from exc
        self._registry = None

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.infos.pop(name, None)
        self._registry = None

    @property
    def registry(self) -> BackendRegistry:
        """The backend registry, filled by calling every plugin's ``mlops_register_backends``."""
        if self._registry is None:
            registry = BackendRegistry()
            # Registration order: built-ins first, so a later plugin can clobber their schemes.
            for impl in self.pm.hook.mlops_register_backends.get_hookimpls():
                name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
                try:
                    impl.function(register=Registrar(registry, name))
                except PluginError:
                    raise
                except Exception as exc:
                    raise PluginError(f'plugin "{name}" failed in mlops_register_backends: {exc}') from exc
            self._registry = registry
        return self._registry

    def call(self, hook_name: str, **kwargs: Any) -> Any:
        """Call a hook; an exception from a plugin becomes a ``PluginError`` naming that plugin."""
        caller = getattr(self.pm.hook, hook_name)
        try:
            return caller(**kwargs)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f'plugin "{self._culprit(caller, exc)}" failed in {hook_name}: {exc!r}') from exc

    def _culprit(self, caller: Any, exc: BaseException) -> str:
        """The plugin whose implementation raised ``exc``: the first of its frames in the traceback."""
        impls = caller.get_hookimpls()
        codes = {getattr(impl.function, "__code__", None): impl for impl in impls}
        tb = exc.__traceback__
        while tb is not None:
            impl = codes.get(tb.tb_frame.f_code)
            if impl is not None:
                return self.pm.get_name(impl.plugin) or repr(impl.plugin)
            tb = tb.tb_next
        names = sorted(self.pm.get_name(impl.plugin) or repr(impl.plugin) for impl in impls)
        return " or ".join(names) or "?"

    def schemes_by_plugin(self) -> dict[str, list[BackendEntry]]:
        out: dict[str, list[BackendEntry]] = {name: [] for name in self.infos}
        for entry in self.registry.entries():
            out.setdefault(entry.plugin, []).append(entry)
        return out


_manager: PluginManager | None = None
_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, created (and plugins loaded) on first use."""
    global _manager
    with _lock:
        if _manager is None:
            _manager = PluginManager()
        return _manager


def reset_plugin_manager() -> None:
    """Forget loaded plugins so the next use discovers them again (tests, MLOPS_PLUGINS changes)."""
    global _manager
    with _lock:
        _manager = None


@contextmanager
def plugin_registered(obj: object, name: str) -> Iterator[PluginManager]:
    """Register ``obj`` as a plugin for the duration of a ``with`` block."""
    manager = get_plugin_manager()
    manager.register(obj, name)
    try:
        yield manager
    finally:
        manager.unregister(name)


def create_backend(kind: str, uri: str, **kwargs: Any) -> Any:
    """Build the ``kind`` backend for ``uri`` through the registry."""
    entry = get_plugin_manager().registry.lookup(kind, uri)
    factory = entry.load()
    try:
        return factory(uri, **kwargs)
    except (MissingDependency, PluginError):
        raise
    except Exception as exc:
        from mlops_sdk.errors import MlopsError

        if isinstance(exc, MlopsError):
            raise
        from mlops_sdk.errors import BackendError
        from mlops_sdk.redact import redact_uri

        raise BackendError(f"{kind} backend {entry.scheme!r} could not open {redact_uri(uri)!r}: {exc}") from exc
