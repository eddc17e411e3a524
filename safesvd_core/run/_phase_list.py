"""A recipe given as a list of configured phases (``compress(recipe=[...])``), and a named recipe's
list to edit (:func:`recipe_phases`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from .._errors import ConfigError
from ..kinds._plugins import registry
from ._draft import assemble
from ._engine import execute
from ._job import CompressionJob, Phase
from ._named_phases import named_phases
from ._recipe import Recipe
from ._result import CompressionResult
from .phases._allocate import AllocationPhase
from .phases._clean import CleanStatisticsPhase
from .phases._lambda import LambdaPhase
from .phases._probe import ProbePhase
from .phases._stages import StagesPhase


def _phases(value: Sequence[Phase | Mapping[str, Any]]) -> tuple[Phase, ...]:
    """The entries as phases; a list of ``{"name": ..., **options}`` tables (the dict form a run's
    manifest records) is built by :func:`named_phases`."""
    if isinstance(value, Sequence) and value and all(isinstance(entry, Mapping) for entry in value):
        value = named_phases(value)
    if isinstance(value, (str, Phase)) or not isinstance(value, Sequence):
        raise ConfigError(
            f"a recipe list is a list or tuple of phases, got {type(value).__name__}: "
            "recipe=[phase, ...], e.g. recipe_phases('safe-svd')"
        )
    for index, phase in enumerate(value):
        if not isinstance(phase, Phase):
            raise ConfigError(
                f"recipe[{index}] is a {type(phase).__name__}, not a Phase (safesvd_core.plugin.Phase)"
            )
    return tuple(value)


def default_phases() -> tuple[Phase, ...]:
    """The engine's phases with their own defaults: probe, λ, clean statistics, allocation, stages."""
    return (ProbePhase(), LambdaPhase(), CleanStatisticsPhase(), AllocationPhase(), StagesPhase())


def run_phase_list(job: CompressionJob, phases: Sequence[Phase]) -> CompressionResult:
    """Compress ``job.model`` in place through ``phases``, a recipe given as a list of configured
    phases: the plan is assembled from their options (:meth:`Phase.configure`)."""
    job, plan = assemble(job, phases)
    return execute(job, plan, phases)


@attrs.frozen
class PhaseList(Recipe):
    """A recipe that is a list of configured phases; its plan is assembled from their options.
    ``compress(recipe=[...])`` runs one; registered as ``phases``, its dict form lists each phase's
    name and options (``entries``), which builds the same list again. Without entries: the engine's
    phases with their own defaults (:func:`default_phases`)."""

    name: ClassVar[str] = "phases"
    handles_trajectories: ClassVar[bool] = True
    distributed: ClassVar[bool] = True
    configured: ClassVar[bool] = True

    entries: tuple[Phase, ...] = attrs.field(factory=default_phases, converter=_phases)

    def phases(self) -> tuple[Phase, ...]:
        return self.entries

    def compress(self, job: CompressionJob) -> CompressionResult:
        return run_phase_list(job, self.entries)


def recipe_phases(name: str, **options: Any) -> list[Phase]:
    """The named recipe with ``options`` as a list of configured phases, to edit and give to
    ``compress(recipe=[...])``; the same list ``compress(recipe=name, **options)`` runs."""
    recipe = registry("recipe").create(name, **options)
    if not recipe.configured:
        listed = sorted(
            each
            for each in registry("recipe").names()
            if getattr(registry("recipe").get(each), "configured", False)
        )
        raise ConfigError(
            f"recipe {name!r} gives its own plan, so it has no list of configured phases; the recipes "
            f"that have one: {', '.join(listed) or 'none'}"
        )
    return list(recipe.phases())
