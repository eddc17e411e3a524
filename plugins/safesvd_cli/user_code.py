"""Code a config names, ``module:function``: imported from the config's folder and called, its
failures turned into one :class:`ConfigError` line. A config is as trusted as a script (SECURITY.md)."""

from __future__ import annotations

import importlib
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from safesvd_core.plugin import ConfigError

#: Modules of the installed safesvd packages: what a config names there is not code of its own. They
#: are imported from the environment only, never from a config's folder (which could shadow them).
OWN_PACKAGES = "safesvd_"


def own_code(spec: str) -> bool:
    """Whether ``module:function`` names a function of an installed safesvd package."""
    return spec.partition(":")[0].split(".")[0].startswith(OWN_PACKAGES)


def import_object(spec: str, where: str, folders: tuple[Path, ...] = ()) -> Any:
    """The object ``module:name`` names, imported with ``folders`` first on the path (the config's folder)
    for the import alone."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise ConfigError(f"{where}: expected 'module:function', got {spec!r}")
    added = (
        [] if own_code(spec) else [str(folder) for folder in reversed(folders) if str(folder) not in sys.path]
    )
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
