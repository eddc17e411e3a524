"""The plugin manager and one typed registry per plugin kind.

Built-ins and third-party plugins are both modules declared in the ``safesvd`` entry-point group
and loaded the same way. ``SAFESVD_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the entry points of the
``safesvd`` distribution itself; ``SAFESVD_PLUGINS=a,b`` loads only the named entry points.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
from collections.abc import Iterable
from types import ModuleType
from typing import Any, Generic, TypeVar

import attrs
import pluggy

from . import _hookspecs
from ._errors import DuplicatePluginError, SafeSVDError, UnknownPluginError
from ._hookspecs import PROJECT

DISTRIBUTION = "safesvd"
DISABLE_AUTOLOAD_ENV = "SAFESVD_DISABLE_PLUGIN_AUTOLOAD"
ALLOWLIST_ENV = "SAFESVD_PLUGINS"

#: kind → hook name. The kind is what users pass to :func:`available`.
KINDS: dict[str, str] = {
    "estimator": "safesvd_estimators",
    "solver": "safesvd_solvers",
    "allocator": "safesvd_allocators",
    "physics_loss": "safesvd_physics_losses",
    "model_adapter": "safesvd_model_adapters",
    "recipe": "safesvd_recipes",
    "pde_family": "safesvd_pde_families",
}

T = TypeVar("T")


@attrs.frozen
class Registration(Generic[T]):
    """One registered plugin class, with the plugin module and distribution that provide it."""

    kind: str
    name: str
    cls: type[T]
    plugin: str
    distribution: str


class Registry(Generic[T]):
    """Name → class for one kind. Unknown names list the alternatives; duplicates are errors."""

    def __init__(self, kind: str, registrations: Iterable[Registration[T]]) -> None:
        self.kind = kind
        self._entries: dict[str, Registration[T]] = {}
        for entry in registrations:
            name = getattr(entry.cls, "name", None)
            if not isinstance(name, str) or not name:
                raise SafeSVDError(
                    f"{kind} class {entry.cls.__qualname__} from plugin {entry.plugin!r} "
                    f"({entry.distribution}) has no non-empty string 'name' attribute"
                )
            if name in self._entries:
                first = self._entries[name]
                raise DuplicatePluginError(
                    f"{kind} {name!r} is registered twice: by {first.plugin!r} "
                    f"({first.distribution}) and by {entry.plugin!r} ({entry.distribution})"
                )
            self._entries[name] = entry

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._entries)

    def registration(self, name: str) -> Registration[T]:
        """The registration of ``name``; :class:`UnknownPluginError` if there is none."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownPluginError(self.kind, name, self._entries) from None

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``."""
        return self.registration(name).cls

    def create(self, name: str, /, **params: Any) -> T:
        """Instantiate the class registered as ``name`` with ``params``."""
        return self.get(name)(**params)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries[name] for name in self.names())


class PluginManager:
    """Typed façade over :class:`pluggy.PluginManager` for the ``safesvd`` project."""

    def __init__(self, *, autoload: bool = True) -> None:
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(_hookspecs)
        self._distributions: dict[str, str] = {}
        self._registries: dict[str, Registry[Any]] = {}
        if autoload:
            self.load_entry_points()
        self._pm.check_pending()

    def register(self, plugin: ModuleType | object, name: str | None = None, *, distribution: str = "(registered in code)") -> None:
        """Register a plugin object (usually a module with ``@hookimpl`` functions)."""
        registered = self._pm.register(plugin, name=name)
        if registered is None:
            raise DuplicatePluginError(f"plugin {name or plugin!r} is already registered")
        self._distributions[registered] = distribution
        self._pm.check_pending()
        self._registries.clear()

    def load_entry_points(self) -> None:
        """Load the ``safesvd`` entry points, honouring the environment switches."""
        allow = _allowlist()
        only_builtin = os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip() not in ("", "0")
        for dist in importlib.metadata.distributions():
            dist_name = dist.metadata["Name"] or "?"
            if only_builtin and _normalise(dist_name) != DISTRIBUTION:
                continue
            for entry in dist.entry_points:
                if entry.group != PROJECT:
                    continue
                if allow is not None and entry.name not in allow:
                    continue
                if self._pm.get_plugin(entry.name) is not None:
                    continue
                plugin = entry.load()
                self.register(plugin, name=entry.name, distribution=f"{dist_name} {dist.version}")

    def registry(self, kind: str) -> Registry[Any]:
        """The registry of ``kind`` (one of :data:`KINDS`)."""
        if kind not in KINDS:
            raise UnknownPluginError("plugin kind", kind, KINDS)
        if kind not in self._registries:
            self._registries[kind] = Registry(kind, self._collect(kind))
        return self._registries[kind]

    def _collect(self, kind: str) -> list[Registration[Any]]:
        hook = getattr(self._pm.hook, KINDS[kind])
        found: list[Registration[Any]] = []
        for impl in hook.get_hookimpls():  # registration order
            classes = impl.function()
            if classes is None:
                continue
            for cls in classes:
                found.append(
                    Registration(
                        kind=kind,
                        name=getattr(cls, "name", ""),
                        cls=cls,
                        plugin=impl.plugin_name,
                        distribution=self._distributions.get(impl.plugin_name, "?"),
                    )
                )
        return found

    def registrations(self) -> list[Registration[Any]]:
        """Every registration of every kind, sorted by kind then name."""
        return [entry for kind in KINDS for entry in self.registry(kind)]


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-")


def _allowlist() -> set[str] | None:
    raw = os.environ.get(ALLOWLIST_ENV)
    if raw is None or not raw.strip():
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


_default: PluginManager | None = None
_lock = threading.Lock()


def plugin_manager() -> PluginManager:
    """The process-wide plugin manager, created (and entry points loaded) on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = PluginManager()
        return _default


def set_plugin_manager(manager: PluginManager | None) -> None:
    """Replace the process-wide manager (tests use a fresh one); ``None`` resets it."""
    global _default
    with _lock:
        _default = manager


def registry(kind: str) -> Registry[Any]:
    """The registry of ``kind`` in the process-wide manager."""
    return plugin_manager().registry(kind)


def available(kind: str) -> list[str]:
    """Sorted names registered for ``kind``: ``"estimator"``, ``"solver"``, ``"allocator"``,
    ``"physics_loss"``, ``"model_adapter"``, ``"recipe"`` or ``"pde_family"``."""
    return registry(kind).names()
