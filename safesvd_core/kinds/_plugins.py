"""The plugin manager and one typed registry per plugin kind.

Built-ins and third-party plugins are both modules declared in the ``safesvd`` entry-point group
and loaded the same way. ``SAFESVD_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the entry points of the
``safesvd`` distribution itself; ``SAFESVD_PLUGINS=a,b`` loads only the named entry points.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import os
import threading
import warnings
from collections.abc import Iterable
from types import ModuleType
from typing import Any, Generic, TypeVar

import attrs
import pluggy

from .._errors import ConfigError, DuplicatePluginError, SafeSVDError, UnknownPluginError
from . import _hookspecs
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
    "phase": "safesvd_phases",
    "cli_command": "safesvd_cli_commands",
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


class PluginLoadWarning(UserWarning):
    """A plugin failed to load; the others were loaded (see :attr:`PluginManager.failures`)."""


@attrs.frozen
class PluginFailure:
    """A plugin that raised while it was loaded, registered or asked for its classes."""

    plugin: str
    distribution: str
    error: str

    def __str__(self) -> str:
        return f"{self.plugin!r} ({self.distribution}): {self.error}"


@functools.lru_cache(maxsize=512)  # read at every instantiation (estimators: per layer and pass)
def option_names(cls: type) -> frozenset[str] | None:
    """The keyword options ``cls(...)`` accepts, or ``None`` when it takes any (``**kwargs``)."""
    if attrs.has(cls):
        return frozenset(field.alias for field in attrs.fields(cls) if field.init)
    parameters = list(inspect.signature(cls).parameters.values())
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return frozenset(
        parameter.name
        for parameter in parameters
        if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )


class Registry(Generic[T]):
    """Name → class for one kind. Unknown names list the alternatives; duplicates are errors."""

    def __init__(
        self, kind: str, registrations: Iterable[Registration[T]], failures: Iterable[PluginFailure] = ()
    ) -> None:
        self.kind = kind
        self.failures = tuple(failures)
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
            raise UnknownPluginError(self.kind, name, self._entries, self.failures) from None

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``."""
        return self.registration(name).cls

    def create(self, name: str, /, **params: Any) -> T:
        """Instantiate the class registered as ``name`` with the options ``params``; an option it
        does not take is a :class:`ConfigError` that lists the ones it does."""
        cls = self.get(name)
        known = option_names(cls)
        unknown = [] if known is None else sorted(set(params) - known)
        if unknown:
            raise ConfigError(
                f"{self.kind} {name!r} has no option(s) {unknown}. "
                f"Its options: {', '.join(sorted(known)) or '(none)'}"
            )
        return cls(**params)

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
        #: Plugins that raised while loading; the others loaded (``safesvd plugins`` lists both).
        self.failures: list[PluginFailure] = []
        if autoload:
            self.load_entry_points()
        self._pm.check_pending()

    def register(
        self,
        plugin: ModuleType | object,
        name: str | None = None,
        *,
        distribution: str = "(registered in code)",
    ) -> None:
        """Register a plugin object (usually a module with ``@hookimpl`` functions). A name or an
        object registered already is a :class:`DuplicatePluginError` that names both providers."""
        if name is not None and self._pm.has_plugin(name):
            raise DuplicatePluginError(
                f"plugin name {name!r} is registered twice: by {self._distributions.get(name, '?')} "
                f"and by {distribution}"
            )
        if self._pm.is_registered(plugin):
            first = self._pm.get_name(plugin)
            raise DuplicatePluginError(
                f"plugin {plugin!r} is registered twice: as {first!r} "
                f"({self._distributions.get(first, '?')}) and as {name!r} ({distribution})"
            )
        registered = self._pm.register(plugin, name=name)
        self._distributions[registered] = distribution
        self._pm.check_pending()
        self._registries.clear()

    def load_entry_points(self) -> None:
        """Load the ``safesvd`` entry points, honouring the environment switches.

        One entry-point name offered by two distributions is a :class:`DuplicatePluginError` naming
        both. A plugin that raises while it loads is recorded in :attr:`failures`, with a
        :class:`PluginLoadWarning`, and the others still load.
        """
        allow = _allowlist()
        only_builtin = os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip() not in ("", "0")
        providers: dict[str, str] = {}
        # safesvd's own plugins first: a third-party plugin may build on a built-in at import
        found = sorted(
            importlib.metadata.distributions(),
            key=lambda d: _normalise(d.metadata["Name"] or "") != DISTRIBUTION,
        )
        for dist in found:
            dist_name = dist.metadata["Name"] or "?"
            if only_builtin and _normalise(dist_name) != DISTRIBUTION:
                continue
            for entry in dist.entry_points:
                if entry.group != PROJECT or (allow is not None and entry.name not in allow):
                    continue
                if entry.name in providers:
                    if providers[entry.name] == _normalise(dist_name):
                        continue  # one distribution found twice on sys.path
                    raise DuplicatePluginError(
                        f"plugin {entry.name!r} is offered by two distributions: "
                        f"{self._distributions.get(entry.name, '?')} "
                        f"and {dist_name} {dist.version}; uninstall one of them"
                    )
                providers[entry.name] = _normalise(dist_name)
                distribution = f"{dist_name} {dist.version}"
                try:
                    self.register(entry.load(), name=entry.name, distribution=distribution)
                except DuplicatePluginError:
                    raise
                except Exception as error:  # noqa: BLE001 - isolated, named and recorded, never swallowed
                    self._fail(entry.name, distribution, error)

    def _fail(self, plugin: str, distribution: str, error: BaseException) -> None:
        failure = PluginFailure(plugin, distribution, f"{type(error).__name__}: {error}")
        self.failures.append(failure)
        warnings.warn(
            f"safesvd plugin {failure} failed to load; the other plugins are available",
            PluginLoadWarning,
            stacklevel=3,
        )

    def registry(self, kind: str) -> Registry[Any]:
        """The registry of ``kind`` (one of :data:`KINDS`)."""
        if kind not in KINDS:
            raise UnknownPluginError("plugin kind", kind, KINDS)
        if kind not in self._registries:
            found = self._collect(kind)
            self._registries[kind] = Registry(kind, found, self.failures)
        return self._registries[kind]

    def _collect(self, kind: str) -> list[Registration[Any]]:
        hook = getattr(self._pm.hook, KINDS[kind])
        found: list[Registration[Any]] = []
        for impl in hook.get_hookimpls():  # registration order
            try:
                classes = impl.function()
            except Exception as error:  # noqa: BLE001 - isolated, named and recorded, never swallowed
                self._fail(impl.plugin_name, self._distributions.get(impl.plugin_name, "?"), error)
                continue
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
#: Re-entrant: a plugin module that calls :func:`registry` at import runs inside the load below.
_lock = threading.RLock()


def plugin_manager() -> PluginManager:
    """The process-wide plugin manager, created (and entry points loaded) on first use.

    The manager is published before its entry points load, so that a plugin module calling
    :func:`registry` at import (to subclass a built-in, say) gets it, with what has loaded so far:
    safesvd's own plugins load first. Other threads wait for the load to finish. A load that raises
    leaves no manager behind."""
    global _default
    with _lock:
        if _default is None:
            _default = PluginManager(autoload=False)
            try:
                _default.load_entry_points()
                _default._pm.check_pending()
            except BaseException:
                _default = None
                raise
        return _default


def set_plugin_manager(manager: PluginManager | None) -> PluginManager | None:
    """Replace the process-wide manager (``None`` resets it: a fresh one on first use) and return the
    one it replaces; tests use :func:`safesvd_core.testing.plugins.using_plugin_manager`."""
    global _default
    with _lock:
        previous, _default = _default, manager
    return previous


def registry(kind: str) -> Registry[Any]:
    """The registry of ``kind`` in the process-wide manager."""
    return plugin_manager().registry(kind)


def available(kind: str) -> list[str]:
    """Sorted names registered for ``kind``: ``"estimator"``, ``"solver"``, ``"allocator"``,
    ``"physics_loss"``, ``"model_adapter"``, ``"recipe"``, ``"pde_family"``, ``"phase"`` or
    ``"cli_command"``."""
    return registry(kind).names()
