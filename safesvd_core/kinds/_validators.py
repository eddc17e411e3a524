"""attrs validators with messages that name the plugin, the field, what was expected and what arrived."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from .._errors import ConfigError
from ._plugins import registry


def _fail(instance: Any, attribute: attrs.Attribute, expected: str, value: Any) -> None:
    owner = getattr(type(instance), "name", None)
    prefix = f"{owner} " if isinstance(owner, str) and owner else ""
    raise ConfigError(f"{prefix}{attribute.name} must be {expected}, got {value!r}")


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def unit_interval(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """A real number in [0, 1]."""
    if not _number(value) or not 0.0 <= value <= 1.0:
        _fail(instance, attribute, "a number in [0, 1]", value)


def ratio_value(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """A kept-parameter fraction in (0, 1]."""
    if not _number(value) or not 0.0 < value <= 1.0:
        _fail(instance, attribute, "a number in (0, 1] (the fraction of parameters kept)", value)


def positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """A real number > 0."""
    if not _number(value) or not value > 0:
        _fail(instance, attribute, "a positive number", value)


def non_negative(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """A real number ≥ 0."""
    if not _number(value) or not value >= 0:
        _fail(instance, attribute, "a number ≥ 0", value)


def positive_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """An integer ≥ 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(instance, attribute, "an integer ≥ 1", value)


def non_negative_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """An integer ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _fail(instance, attribute, "an integer ≥ 0", value)


def one_of(choices: Iterable[Any]):
    """One of ``choices``; a bool never stands for a number (``True`` is not ``1``) nor the reverse."""
    allowed = tuple(choices)

    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not any(
            value == choice and isinstance(value, bool) == isinstance(choice, bool) for choice in allowed
        ):
            _fail(instance, attribute, "one of " + ", ".join(repr(c) for c in allowed), value)

    return validate


def registered(kind: str):
    """A name registered for ``kind`` (checked against the plugin registry)."""

    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not isinstance(value, str):
            _fail(instance, attribute, f"the name of a registered {kind}", value)
        registry(kind).registration(value)

    return validate


#: An option value chosen on a held-out split by a tuning phase.
AUTO = "auto"


def auto_or(check):
    """A validator: ``"auto"`` (chosen on a held-out split by a tuning phase) or what ``check`` accepts."""

    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value != AUTO:
            check(instance, attribute, value)

    return validate


def lam_value(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """The physics weight λ: ``"auto"`` (balanced on the calibration set) or a number ≥ 0."""
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"lam must be 'auto' or a number ≥ 0, got {value!r}")


#: A rollout length: an int ≥ 1, ``None`` (every step the items hold) or ``"auto"``.
steps_value = attrs.validators.optional(auto_or(positive_int))
