"""Code a config names, ``module:function``: imported from the config's folder and called, its
failures turned into one :class:`ConfigError` line. A config is as trusted as a script (SECURITY.md).

Code of an installed safesvd package is not code of the config's own: that is decided by where its
module is found, never by its name alone. The module must belong to a distribution that provides
safesvd plugins (``safesvd`` itself, or one in the ``safesvd`` entry-point group), and the import
must find it where the environment installed it (site-packages, or the source tree of an editable
install), not in the current folder or the config's folder, where a ``safesvd_data.py`` could shadow it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import sys
import tomllib
from collections.abc import Callable, Mapping
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from typing import Any

from safesvd_core.plugin import ConfigError


@functools.cache
def _plugin_packages() -> frozenset[str]:
    """Top-level modules of the installed distributions that provide safesvd plugins (safesvd's own too)."""
    providers = {"safesvd"} | {
        point.dist.name for point in importlib.metadata.entry_points(group="safesvd") if point.dist
    }
    return frozenset(
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if providers.intersection(distributions)
    )


def _origin(spec: ModuleSpec | None) -> Path | None:
    """The file (or the folder, for a namespace package) a module spec loads from."""
    if spec is None:
        return None
    if spec.origin and spec.has_location:
        return Path(spec.origin).resolve()
    locations = list(spec.submodule_search_locations or ())
    return Path(locations[0]).resolve() if locations else None


def _installed_spec(name: str, excluded: frozenset[Path]) -> ModuleSpec | None:
    """The spec of the top-level module ``name`` as the environment provides it, the ``excluded``
    folders (the current one, a config's) off the path."""
    path = [entry for entry in sys.path if Path(entry or ".").resolve() not in excluded]
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        spec = None if find_spec is None else find_spec(name, path if finder is PathFinder else None)
        if spec is not None:
            return spec
    return None


def untrusted_reason(spec: str, folders: tuple[Path, ...] = ()) -> str | None:
    """Why ``module:function`` is code of its own, to be trusted before it is run; ``None`` when it is
    a module of an installed safesvd package, found where it is installed (see the module)."""
    top = spec.partition(":")[0].split(".")[0]
    if top not in _plugin_packages():
        return "not a module of an installed safesvd package"
    excluded = frozenset(folder.resolve() for folder in (Path.cwd(), *folders))
    installed = _origin(_installed_spec(top, excluded))
    found = _origin(importlib.util.find_spec(top))  # what an import would load now
    if installed is None or found != installed:
        return (
            f"{top!r} would be imported from {found}, not from the installed package ({installed}); "
            "remove that file, or run from another folder"
        )
    return None


def own_code(spec: str, folders: tuple[Path, ...] = ()) -> bool:
    """Whether ``module:function`` names a function of an installed safesvd package (see the module)."""
    return untrusted_reason(spec, folders) is None


def _forget_stale(module_name: str, folders: tuple[Path, ...]) -> None:
    """Drop ``module_name`` (its top-level package and submodules) from the import cache when a config
    folder holds a module of that name other than the cached one: two configs in two folders, each
    with its own ``data.py``, must each get their own in one process."""
    top = module_name.split(".")[0]
    cached = sys.modules.get(top)
    if cached is None or not folders:
        return
    here = _origin(PathFinder.find_spec(top, [str(folder) for folder in folders]))
    if here is not None and here != _origin(getattr(cached, "__spec__", None)):
        for name in [name for name in sys.modules if name == top or name.startswith(top + ".")]:
            del sys.modules[name]


def import_object(spec: str, where: str, folders: tuple[Path, ...] = ()) -> Any:
    """The object ``module:name`` names, imported with ``folders`` first on the path (the config's folder)
    for the import alone."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise ConfigError(f"{where}: expected 'module:function', got {spec!r}")
    added = []
    if not own_code(spec, folders):
        added = [str(folder) for folder in reversed(folders) if str(folder) not in sys.path]
        _forget_stale(module_name, folders)
    for folder in added:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"{where}: cannot import {module_name!r} ({error}); the module must be importable: put it "
            "beside the config, run from its folder, or pip install its package"
        ) from error
    finally:
        # the folders leave the path again: a matplotlib.py beside a config must not shadow matplotlib later
        for folder in added:
            if folder in sys.path:
                sys.path.remove(folder)
    if not hasattr(module, name):
        public = sorted(n for n in dir(module) if not n.startswith("_"))
        raise ConfigError(
            f"{where}: module {module_name!r} has no {name!r}; it has "
            f"{', '.join(public[:12]) or 'nothing public'}"
        )
    return getattr(module, name)


def code_value(value: Any, where: str) -> str | None:
    """``value`` as a ``"module:function"`` string (or ``None`` when absent); anything else is refused."""
    if value is None:
        return None
    if not isinstance(value, str) or value.count(":") != 1 or not all(value.split(":")):
        raise ConfigError(f'{where}: expected "module:function" (a string), got {value!r}')
    return value


def call_user(function: Callable[..., Any], where: str, **options: Any) -> Any:
    """``function(**options)``; an exception of the user's code becomes one :class:`ConfigError` line."""
    try:
        return function(**options)
    except ConfigError:
        raise
    except Exception as error:  # the user's code failed: named, chained (--debug shows it)
        raise ConfigError(f"{where} raised {type(error).__name__}: {error}") from error


def path_value(value: Any, base: Path, where: str) -> str:
    """``value`` (a path in a config) made absolute against ``base``."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a path, got {value!r}")
    return str((base / value).resolve())


def options_value(value: Any, where: str) -> dict[str, Any]:
    """``value`` as keyword arguments (a TOML table)."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table of keyword arguments, got {value!r}")
    return dict(value)


def toml_value(text: str) -> Any:
    """``text`` read as a TOML value (``0.5``, ``true``, ``[1, 2]``, ``"name"``); a bare word is a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text
