"""``compress``'s keywords of the last release that moved into grouped ones (``statistics_memory`` +
``spill_dir`` → ``statistics=SpillPolicy(...)``, ``reducer`` → ``distributed=``, ``refine_data`` +
``refine_steps`` + ``refine_options`` → ``refine=Refinement(...)``): still taken, with a warning."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._deprecation import renamed
from ._errors import ConfigError
from .refinement._refine_options import RefineOptions
from .refinement._refinement import Refinement
from .statistics._spill import SpillPolicy

_SPILL = ("statistics_memory", "spill_dir")
_REFINE = ("refine_data", "refine_steps", "refine_options")
MOVED = (*_SPILL, "reducer", *_REFINE)


def _taken(old: Mapping[str, Any], group: tuple[str, ...], new: str, given: Any) -> bool:
    """Whether ``old`` holds a keyword of ``group``; an error when ``new=`` was given beside it."""
    if not any(key in old for key in group):
        return False
    if given is not None:
        raise ConfigError(f"compress: give {new}= only ({', '.join(group)} are its deprecated spelling)")
    return True


def _refinement(old: Mapping[str, Any]) -> Refinement:
    if "refine_data" not in old:
        raise ConfigError(
            "refine_steps and refine_options need refine_data: fresh unlabelled inputs from the data "
            "distribution (give refine=Refinement(inputs, steps=...))"
        )
    steps, options = old.get("refine_steps", 0), old.get("refine_options")
    if isinstance(options, RefineOptions):
        if steps and steps != options.steps:
            raise ConfigError(
                f"refine_steps={steps} disagrees with refine_options.steps={options.steps}; give one"
            )
        return Refinement(old["refine_data"], options)
    options = dict(options or {})
    if "steps" in options:
        raise ConfigError("give the number of steps as refine_steps=, not inside refine_options")
    if not steps:
        raise ConfigError("refine_data was given without refine_steps: say how many optimiser steps to take")
    return Refinement(old["refine_data"], steps, **options)


def fold_moved_keywords(
    options: dict[str, Any], statistics: Any, distributed: Any, refine: Any
) -> tuple[dict[str, Any], Any, Any, Any]:
    """``options`` without the moved keywords, and ``statistics``, ``distributed`` and ``refine`` with
    them folded in (each with a ``DeprecationWarning``)."""
    old = {key: options[key] for key in MOVED if key in options}
    if not old:
        return options, statistics, distributed, refine
    rest = {key: value for key, value in options.items() if key not in old}
    if _taken(old, _SPILL, "statistics", statistics):
        if not all(key in old for key in _SPILL):
            raise ConfigError(
                "statistics_memory and spill_dir go together: the cap says how much stays in memory, "
                "the directory where the rest goes (give statistics=SpillPolicy(directory, max_bytes))"
            )
        statistics = SpillPolicy(old["spill_dir"], old["statistics_memory"])
        renamed(
            "compress(statistics_memory=, spill_dir=)",
            "statistics=SpillPolicy(spill_dir, statistics_memory)",
            stacklevel=4,
        )
    if _taken(old, ("reducer",), "distributed", distributed):
        distributed = old["reducer"]
        renamed("compress(reducer=)", "distributed=reducer", stacklevel=4)
    if _taken(old, _REFINE, "refine", refine):
        refine = _refinement(old)
        renamed(
            "compress(refine_data=, refine_steps=, refine_options=)",
            "refine=Refinement(data, steps, **options)",
            stacklevel=4,
        )
    return rest, statistics, distributed, refine
