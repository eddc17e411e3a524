"""The recipe kind: a named compression method, a composition of the other kinds plus options,
run through the engine's phases (:meth:`Recipe.phases`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from ._engine import DEFAULT_PHASES
from ._job import CompressionJob, Phase
from ._result import CompressionResult


class Recipe(ABC):
    """A named compression method: a composition of the other kinds plus options.

    Concrete recipes are frozen attrs classes whose fields are the options users pass to
    :func:`safesvd_core.compress`. A recipe that sets ``handles_trajectories`` receives trajectory
    items as they are (see ``ModelAdapter.trajectory_steps``); any other recipe receives them as
    teacher-forced one-step batches (``one_step_batches``). A recipe that sets ``distributed``
    may run on a shard of the items per process. A recipe that sets ``configured`` is a list of
    configured phases (:meth:`phases`; ``recipe_phases(name)`` gives it to edit).
    """

    name: ClassVar[str]
    handles_trajectories: ClassVar[bool] = False
    #: Whether the recipe runs distributed: only through ``run_plan``/``clean_statistics``, whose
    #: passes are sharded and reduced (a calibration loop of its own would not be).
    distributed: ClassVar[bool] = False
    #: Whether :meth:`phases` is the whole recipe: configured phases that assemble the plan
    #: (``run_phase_list``); otherwise the recipe gives its plan itself and the phases keep their defaults.
    configured: ClassVar[bool] = False

    def phases(self) -> tuple[Phase, ...]:
        """The phases the recipe runs through: the engine's default ones. A recipe (or a subclass of
        one) adds its own by name and keeps the rest, e.g.
        ``return insert_phase(super().phases(), MyPhase(), before="stages")``."""
        return DEFAULT_PHASES

    @abstractmethod
    def compress(self, job: CompressionJob) -> CompressionResult:
        """Run the compression described by ``job`` (usually ``run_plan(job, plan, self.phases())``)."""
