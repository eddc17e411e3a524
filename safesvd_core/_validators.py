"""attrs validators with messages that name the field, what was expected and what arrived."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from ._errors import ConfigError


def _fail(attribute: attrs.Attribute, expected: str, value: Any) -> None:
    raise ConfigError(f"{attribute.name} must be {expected}, got {value!r}")


def unit_interval(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """A real number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        _fail(attribute, "a number in [0, 1]", value)


def ratio_value(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """A kept-parameter fraction in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        _fail(attribute, "a number in (0, 1] (the fraction of parameters kept)", value)


def positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """A real number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        _fail(attribute, "a positive number", value)


def positive_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """An integer ≥ 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(attribute, "an integer ≥ 1", value)


def one_of(choices: Iterable[Any]):
    """One of ``choices``."""
    allowed = tuple(choices)

    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in allowed:
            _fail(attribute, "one of " + ", ".join(repr(c) for c in allowed), value)

    return validate


def registered(kind: str):
    """A name registered for ``kind`` (checked against the plugin registry)."""

    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        from ._plugins import registry

        if not isinstance(value, str):
            _fail(attribute, f"the name of a registered {kind}", value)
        registry(kind).registration(value)

    return validate
