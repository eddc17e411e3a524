"""A recipe list written by phase names and options (the CLI's ``[compress] phases``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import ConfigError, SafeSVDError
from ..kinds._plugins import registry
from ._job import Phase


def _entry(entry: Any, index: int) -> tuple[str, dict[str, Any]]:
    """An entry's phase name and options; a clear error for anything but a table with a ``name``."""
    if not isinstance(entry, Mapping):
        raise ConfigError(
            f"phases[{index}] is a {type(entry).__name__}; each phase is a table with its name and "
            'options, e.g. {name = "stages", alpha = 0.5}'
        )
    options = dict(entry)
    name = options.pop("name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"phases[{index}] names no phase (a 'name' key); the phases: "
            + ", ".join(registry("phase").names())
        )
    return name, options


def named_phases(entries: Sequence[Mapping[str, Any]]) -> list[Phase]:
    """The configured phases ``entries`` name, in order: ``[{"name": "lambda", "lam": 0.1},
        {"name": "clean"}, ...]``, each a phase registered under that name (``available("phase")``)
        created with the entry's other keys as its options. A phase that holds the phases after it
        (``holds_following``, the tuning phase) is given them (a ``phases`` key, as the dict form of a
    run writes it, must list exactly those). The list goes to ``compress(recipe=...)``."""
    if isinstance(entries, (str, Mapping)) or not isinstance(entries, Sequence) or not entries:
        raise ConfigError(
            "phases must be a non-empty list of tables, each a phase's name and options, e.g. "
            '[{name = "probe"}, {name = "lambda"}, ...]'
        )
    built: list[Phase] = []
    for index in reversed(range(len(entries))):
        name, options = _entry(entries[index], index)
        try:
            if getattr(registry("phase").get(name), "holds_following", False):
                given = options.get("phases")
                if given is not None and tuple(named_phases(given)) != tuple(built):
                    raise ConfigError("it holds the phases after it; give no 'phases' (or exactly those)")
                options["phases"] = tuple(built)
            phase = registry("phase").create(name, **options)
        except ConfigError as error:
            raise ConfigError(f"phases[{index}] ({name}): {error}") from None
        if not isinstance(phase, Phase):
            raise SafeSVDError(
                f"phase {name!r} is registered by a class that is not a Phase: {type(phase)!r}"
            )
        built.insert(0, phase)
    return built
