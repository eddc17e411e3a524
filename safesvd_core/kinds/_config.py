"""Plugin configs as versioned plain dicts (TOML/JSON-ready), resolved through the registries.

``config_to_dict(recipe)`` → ``{"kind": "recipe", "name": "safe-svd", "version": 1, "options": {...}}``;
``config_from_dict(data)`` builds the same object back. Nested plugin objects (e.g. physics
losses inside a recipe's options) become ``{"name": ..., **options}`` dicts, which every
option that takes a plugin accepts.

Each plugin class versions its own options: ``config_version`` (a class attribute, default 1).
A class that changes its options raises it and gives a classmethod
``migrate_config(options, version) -> options`` that upgrades a dict written at an older
``version``; a dict from a newer version, or an older one without a migration, is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .._errors import ConfigError
from .._field import FieldDescription
from ._plugins import KINDS, registry

#: The version of a plugin class that declares none.
DEFAULT_VERSION = 1


def config_version(cls: type) -> int:
    """The options version of plugin class ``cls``."""
    return int(getattr(cls, "config_version", DEFAULT_VERSION))


def _kind_of(obj: object) -> str:
    for kind in KINDS:
        entries = registry(kind)
        name = getattr(type(obj), "name", None)
        if isinstance(name, str) and name in entries and entries.get(name) is type(obj):
            return kind
    raise ConfigError(f"{type(obj).__qualname__} is not a registered plugin class")


def _plain(value: Any) -> Any:
    if isinstance(value, FieldDescription):
        return value.to_dict()
    if attrs.has(type(value)) and isinstance(getattr(type(value), "name", None), str):
        return {"name": type(value).name, **{k: _plain(v) for k, v in _options(value).items()}}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"option value {value!r} of type {type(value).__name__} has no plain-dict form")


def _options(obj: object) -> dict[str, Any]:
    return {field.alias: getattr(obj, field.name) for field in attrs.fields(type(obj)) if field.init}


def config_to_dict(obj: object) -> dict[str, Any]:
    """The versioned plain-dict form of a registered, attrs-based plugin object."""
    if not attrs.has(type(obj)):
        raise ConfigError(f"{type(obj).__qualname__} is not an attrs config; it has no dict form")
    return {
        "kind": _kind_of(obj),
        "name": type(obj).name,
        "version": config_version(type(obj)),
        "options": {k: _plain(v) for k, v in _options(obj).items()},
    }


def config_from_dict(data: Mapping[str, Any]) -> Any:
    """Rebuild the object described by :func:`config_to_dict` output (migrating older versions)."""
    missing = {"kind", "name", "version", "options"} - set(data)
    if missing:
        raise ConfigError(
            f"a config dict needs the keys kind, name, version and options; missing {sorted(missing)}"
        )
    kinds = registry(data["kind"]) if data["kind"] in KINDS else None
    if kinds is None:
        raise ConfigError(f"config kind {data['kind']!r} is not one of {', '.join(KINDS)}")
    cls = kinds.get(data["name"])
    version, current = data["version"], config_version(cls)
    options = dict(data["options"])
    label = f"{data['kind']} {data['name']!r}"
    if isinstance(version, bool) or not isinstance(version, int) or version > current:
        raise ConfigError(
            f"{label} config version {version!r} is not supported: this installation reads "
            f"version {current} and older (upgrade the plugin that provides it)"
        )
    if version < current:
        migrate = getattr(cls, "migrate_config", None)
        if migrate is None:
            raise ConfigError(
                f"{label} config version {version} is older than {current} and the plugin gives "
                "no migrate_config to upgrade it"
            )
        options = dict(migrate(options, version))
    return kinds.create(data["name"], **options)
