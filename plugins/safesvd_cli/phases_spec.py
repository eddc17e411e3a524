"""``[compress] phases``: a recipe written as its list of phases, each a table with the phase's name
and options (``{name = "stages", alpha = 0.5}``), checked when the config is read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from safesvd_core import named_phases
from safesvd_core.plugin import ConfigError, Phase, registry


def family_given(cls: type, options: Mapping[str, Any], family: str | None) -> dict[str, Any]:
    """``options`` of plugin class ``cls`` with ``[compress] family`` where ``cls`` takes a family and
    ``options`` names none (a recipe, a phase)."""
    options = dict(options)
    if family is not None and attrs.has(cls) and "family" in attrs.fields_dict(cls):
        options.setdefault("family", family)
    return options


def with_family(entries: Sequence[Mapping[str, Any]], family: str | None) -> list[dict[str, Any]]:
    """``entries`` with ``[compress] family`` given to every phase that takes a family and names none."""
    return [
        family_given(registry("phase").get(str(entry.get("name"))), entry, family) if family else dict(entry)
        for entry in entries
    ]


def read_phases(run: Mapping[str, Any], family: str | None) -> tuple[dict[str, Any], ...]:
    """The ``[compress]`` table's ``phases`` (empty without it), each phase created once to check it."""
    entries = run.get("phases")
    if entries is None:
        return ()
    given = [key for key in ("recipe", "options") if key in run]
    if given:
        raise ConfigError(
            "[compress] phases lists the recipe's phases with their options; give it without "
            + " and ".join(given)
        )
    if not isinstance(entries, list) or not all(isinstance(entry, Mapping) for entry in entries):
        raise ConfigError(
            '[compress] phases: expected a list of tables, e.g. [{name = "probe"}, {name = "lambda"}, ...]'
        )
    try:
        named_phases(with_family(entries, family))
    except ConfigError as error:
        raise ConfigError(f"[compress] {error}") from None
    return tuple(dict(entry) for entry in entries)


def phase_list(entries: Sequence[Mapping[str, Any]], family: str | None) -> list[Phase]:
    """The configured phases of ``[compress] phases``, for ``compress(recipe=...)``."""
    return named_phases(with_family(entries, family))
