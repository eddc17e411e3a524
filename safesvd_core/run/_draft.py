"""A recipe as a list of configured phases: each phase sets the parts of the plan it owns
(:meth:`~safesvd_core.plugin.Phase.configure`), the plan is assembled from the list, and the
list runs through the engine (:func:`run_phase_list`)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .._errors import ConfigError
from ._job import CompressionJob, Phase, Plan
from ._plan_draft import PlanDraft
from ._rollout import one_step_batches

#: The plan parts every list must set, and the phase that sets each in the default list.
REQUIRED_PARTS = {"clean_estimators": "clean", "allocator": "allocate", "solver": "stages"}


def assemble(job: CompressionJob, phases: Sequence[Phase]) -> tuple[CompressionJob, Plan]:
    """The plan ``phases`` configure for ``job``, and the job as the plan takes it (trajectories
    become one-step batches unless a phase sets a rollout ``source``)."""
    draft = _drafted(PlanDraft(job), phases)
    if "source" not in draft.parts:
        job = attrs.evolve(job, batches=one_step_batches(job.adapter, job.batches))
    return job, Plan(**draft.parts)


def draft_plan(phases: Sequence[Phase]) -> Plan:
    """The plan ``phases`` configure with no data at hand: the rollout length is the phases' own
    ``rollout_steps`` (none: one-step batches)."""
    return Plan(**_drafted(PlanDraft(None), phases).parts)


def _drafted(draft: PlanDraft, phases: Sequence[Phase]) -> PlanDraft:
    for phase in phases:
        phase.configure(draft)
    missing = [part for part in REQUIRED_PARTS if part not in draft.parts]
    if missing:
        raise ConfigError(
            "the list of phases sets no "
            + ", ".join(f"{part} (the {REQUIRED_PARTS[part]!r} phase sets it)" for part in missing)
            + f"; the phases are {', '.join(phase.name for phase in phases) or 'none'}"
        )
    if draft.autos and not draft.tuned:
        raise ConfigError(
            f"{', '.join(draft.autos)} = 'auto' is chosen on a held-out split by a tuning phase, and the "
            "list has none; give a value, or build the list with recipe_phases(name, ...)"
        )
    return draft
