"""Renamed public names: the old spelling keeps working for one release, with a ``DeprecationWarning``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from ._errors import ConfigError


def renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is now spelt ``new`` (``stacklevel``: the caller's caller by default)."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed_option(
    options: dict[str, Any],
    where: str,
    old: str,
    new: str,
    values: Mapping[Any, Any] | None = None,
    *,
    stacklevel: int = 4,
) -> dict[str, Any]:
    """``options`` with the keyword ``old`` moved to ``new`` (its value translated by ``values``), with a
    warning; an error when both are given."""
    if old not in options:
        return options
    if new in options:
        raise ConfigError(f"{where}: give {new}= only ({old}= is its deprecated spelling)")
    options = dict(options)
    value = options.pop(old)
    if values is not None and isinstance(value, str) and value in values:
        options[new] = values[value]
        renamed(f"{where}({old}={value!r})", f"{new}={values[value]!r}", stacklevel=stacklevel)
    else:
        options[new] = value
        renamed(f"{where}({old}=...)", f"{new}=", stacklevel=stacklevel)
    return options
