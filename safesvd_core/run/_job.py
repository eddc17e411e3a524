"""A compression run's types: what is asked (the job, the plan), what is known so far (the run
state, whose typed outputs live in ``_outputs``), and the contracts that act on it (phases, run
hooks). Recipes are in ``_recipe``."""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs
from torch import nn

from .._defaults import DEFAULTS
from .._deprecation import renamed, renamed_option
from .._errors import ConfigError, SafeSVDError
from .._grouped import fold_flat
from ..kinds._interfaces import Allocator, ModelAdapter, Solver
from ..kinds._plugins import registry
from ..model._layers import LinearMap
from ..physics._family import PDEFamily
from ..physics._objective import RESIDUAL_NAMES, CalibrationObjective, ObjectiveSpec
from ..statistics._spill import SpillPolicy
from ..statistics._statistics import CalibrationStatistics
from ._outputs import MOVED, Allocation, Budget, CleanStatistics, Probe, Progress, RunLog, Stage, moved
from ._seams import BatchSource, LocalReducer, PairSource, StatisticsReducer

if TYPE_CHECKING:
    from ._plan_draft import PlanDraft

StageMode = Literal["auto", "block", "layer", "exact"]
STAGE_MODES = ("auto", "block", "layer", "exact")


@attrs.frozen(kw_only=True)
class RunSeams:
    """How a run shares its work and reports: the ``reducer`` (processes and their statistics), the
    run ``hooks``, the ``spill`` policy of statistics that do not fit in memory, and whether to
    ``show_progress`` bars (a flag; ``RunState.progress`` is the record of the stages done)."""

    reducer: StatisticsReducer = attrs.field(factory=LocalReducer)
    hooks: tuple[RunHook, ...] = ()
    spill: SpillPolicy | None = None
    show_progress: bool = False


@attrs.define(kw_only=True, init=False)
class CompressionJob:
    """Everything a recipe needs: the untouched original, the model to compress, the data, the
    job-level seams (:class:`RunSeams`: processes, hooks, spill, show_progress; also read and given
    flat, ``job.reducer``, ``CompressionJob(..., hooks=...)``) and the phases ``compress`` runs after
    the recipe's own (``closing_phases``: the refinement with data). ``saved_statistics``: clean
    statistics of an earlier run to resume from (the run state's ``statistics`` is what the clean
    phase writes). The names of the last release, ``statistics`` and ``progress``, still work,
    deprecated."""

    original: nn.Module
    model: nn.Module
    batches: Sequence[Any]
    adapter: ModelAdapter
    ratio: float
    recipe: str
    options: dict[str, Any]
    saved_statistics: CalibrationStatistics | None = None
    seams: RunSeams = attrs.field(factory=RunSeams)
    closing_phases: tuple[Phase, ...] = ()

    def __init__(self, **fields: Any) -> None:
        """The fields as keywords; the seams' fields may be given flat (they override ``seams=``)."""
        fields = renamed_option(dict(fields), "CompressionJob", "statistics", "saved_statistics")
        fields = renamed_option(fields, "CompressionJob", "progress", "show_progress")
        self.__attrs_init__(**fold_flat(fields, {"seams": RunSeams}))

    @property
    def reducer(self) -> StatisticsReducer:
        return self.seams.reducer

    @property
    def hooks(self) -> tuple[RunHook, ...]:
        return self.seams.hooks

    @property
    def spill(self) -> SpillPolicy | None:
        return self.seams.spill

    @property
    def show_progress(self) -> bool:
        return self.seams.show_progress

    @property
    def progress(self) -> bool:
        """Deprecated: ``show_progress``."""
        renamed("CompressionJob.progress", "CompressionJob.show_progress")
        return self.seams.show_progress

    @property
    def statistics(self) -> CalibrationStatistics | None:
        """Deprecated: ``saved_statistics``."""
        renamed("CompressionJob.statistics", "CompressionJob.saved_statistics")
        return self.saved_statistics


def provided_statistics(
    clean: Sequence[str], shifted: Sequence[str], options: Mapping[str, Mapping[str, Any]]
) -> frozenset[str]:
    """The statistics the named clean and shifted estimators provide, with their options."""
    estimators = registry("estimator")
    return frozenset().union(
        *(estimators.get(name).provided(**options.get(name, {})) for name in (*clean, *shifted))
    )


#: The options of the plan's objective (:class:`ObjectiveSpec`), which ``Plan(...)`` also takes flat.
OBJECTIVE_OPTIONS = tuple(field.name for field in attrs.fields(ObjectiveSpec))


@attrs.frozen(kw_only=True, init=False)
class Plan:
    """A recipe's composition: which estimators run when, which solver and allocator, the
    calibration objective and the batch source (the phases it runs through are the recipe's,
    ``Recipe.phases()``).

    The objective's options (``physics``, ``lam``, ``lam_ratio``, ``lam_mode``, ``lam_cap``,
    ``fisher``, ``seed``) may be given flat, ``Plan(..., physics=..., lam=...)``, or as
    ``objective=ObjectiveSpec(...)``; they are read as ``plan.objective.<option>``. At construction
    ``lam_mode``, ``fisher`` and ``stage_mode`` must be among the allowed values, and the solver's
    ``requires`` among what the estimators provide. ``residual=`` (``"observed"``, ``"sampled"``)
    is the deprecated spelling of ``fisher=``.
    """

    clean_estimators: tuple[str, ...]
    shifted_estimators: tuple[str, ...] = ()
    solver: Solver
    allocator: Allocator
    #: The calibration objective asked for: physics terms, λ, the Fisher mode.
    objective: ObjectiveSpec = attrs.field(factory=ObjectiveSpec)
    family: PDEFamily | None = None
    stage_mode: StageMode = DEFAULTS.stage_mode  # type: ignore[assignment]
    estimator_options: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    #: A recipe that cannot meet the budget by construction (e.g. SVD-LLM V2) sets this: the
    #: result then reports the miss in ``notes`` instead of raising :class:`BudgetError`.
    may_miss_budget: bool = False
    #: How a calibration item becomes model calls and a loss (one-step pairs by default).
    source: BatchSource = attrs.field(factory=PairSource)

    def __init__(self, **options: Any) -> None:
        """The fields as keywords, the objective's options flat or as ``objective=`` (flat ones
        override it); ``residual=`` is still accepted, with a ``DeprecationWarning``."""
        options = renamed_option(options, "Plan", "residual", "fisher", RESIDUAL_NAMES)
        self.__attrs_init__(**fold_flat(options, {"objective": ObjectiveSpec}))

    @property
    def residual(self) -> str:
        """Deprecated: ``objective.fisher`` in its old spelling (``"observed"`` for ``"empirical"``)."""
        renamed("Plan.residual", "Plan.objective.fisher", stacklevel=3)
        return "observed" if self.objective.fisher == "empirical" else self.objective.fisher

    def __attrs_post_init__(self) -> None:
        if self.stage_mode not in STAGE_MODES:
            raise ConfigError(
                f"stage_mode must be one of {', '.join(map(repr, STAGE_MODES))}, got {self.stage_mode!r}"
            )
        provided = provided_statistics(self.clean_estimators, self.shifted_estimators, self.estimator_options)
        missing = sorted(set(self.solver.requires) - provided)
        if missing:
            raise ConfigError(
                f"solver {self.solver.name!r} needs the statistics {missing}, which none of the plan's "
                f"estimators ({', '.join((*self.clean_estimators, *self.shifted_estimators)) or 'none'}) "
                f"provides (they provide {sorted(provided)})"
            )

    @property
    def sequential(self) -> bool:
        return bool(self.shifted_estimators)

    def describe(self) -> dict[str, Any]:
        """The calibration objective and the solver, JSON-ready (``CompressionResult.objective``)."""
        solver = (
            {field.name: getattr(self.solver, field.name) for field in attrs.fields(type(self.solver))}
            if attrs.has(type(self.solver))
            else {}
        )
        objective = self.objective
        return {
            "physics": [repr(loss) for loss in objective.physics],
            "lam_mode": objective.lam_mode,
            "family": self.family.name if self.family else None,
            "fisher": objective.fisher,
            "source": repr(self.source),
            "solver": {
                "name": self.solver.name,
                **{
                    key: value
                    for key, value in solver.items()
                    if value is None or isinstance(value, (bool, int, float, str))
                },
            },
        }


@attrs.define(kw_only=True)
class RunState:
    """What a run of :func:`~safesvd_core.plugin.run_plan` knows so far; each phase reads and extends it.

    Set at the start: ``job``, ``plan``, ``maps`` (the compressible layers as linear maps),
    ``budget`` and ``log`` (timings, passes, notes, reports: every phase adds to it). Then one typed
    output per default phase, ``None`` until a phase writes it: ``probe``; ``objective`` (the
    calibration loss, λ in it); ``statistics`` (clean); ``allocation`` (spectra, candidates,
    ranks); ``progress`` (stages, records, factors). A phase declares what it ``reads`` and
    ``writes`` of these; the run checks the declarations before any phase runs.
    """

    job: CompressionJob
    plan: Plan
    maps: dict[str, LinearMap]
    budget: Budget
    log: RunLog = attrs.field(factory=RunLog)
    probe: Probe | None = None
    objective: CalibrationObjective | None = None
    statistics: CleanStatistics | None = None
    allocation: Allocation | None = None
    progress: Progress | None = None

    @property
    def layers(self) -> list[str]:
        """The compressible layers, as the adapter lists them."""
        return list(self.maps)

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        """Layer → ``(in_features, out_features)``."""
        return {name: (view.in_features, view.out_features) for name, view in self.maps.items()}

    @property
    def source(self) -> BatchSource:
        return self.plan.source

    @property
    def lam(self) -> float | None:
        """Deprecated: ``state.objective.global_lam``."""
        renamed("RunState.lam", "RunState.objective.global_lam")
        return None if self.objective is None else self.objective.global_lam

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the wall time of the block to ``log.timings[phase]``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.log.timings[phase] = self.log.timings.get(phase, 0.0) + time.perf_counter() - start

    def count(self, phase: str, passes: int = 1) -> None:
        """Record ``passes`` more passes over the calibration set in ``phase``."""
        self.log.passes[phase] = self.log.passes.get(phase, 0) + passes

    def need(self, attribute: str, by: str) -> Any:
        """``self.<attribute>``, or a clear error naming the phase that should have set it (what a
        phase declares it ``reads`` is checked before the run instead)."""
        value = getattr(self, attribute)
        if value is None:
            raise SafeSVDError(
                f"phase {by!r} needs {attribute!r}, which no earlier phase set; check the plan's phases"
            )
        return value


for _old, (_output, _field) in MOVED.items():  # the flat state's names, deprecated
    setattr(RunState, _old, moved(_old, _output, _field))
for _option in OBJECTIVE_OPTIONS:  # the flat plan's objective options, deprecated for reading
    setattr(Plan, _option, moved(_option, "objective", _option, owner="Plan"))

#: The parts of the run state a phase may declare it reads or writes.
PARTS = tuple(field.name for field in attrs.fields(RunState))


class Phase(ABC):
    """One step of :func:`~safesvd_core.plugin.run_plan`: reads and extends the :class:`RunState`.

    ``reads`` names the parts of the state the phase needs (each written by an earlier phase, or
    there from the start), ``writes`` the parts it writes or replaces (see :data:`PARTS`). Every
    list of phases is held to them before any phase runs, and after each phase the run checks that
    what it declares written is there.
    """

    name: ClassVar[str]
    #: Parts of the state this phase needs, e.g. ``("probe", "statistics")``.
    reads: ClassVar[tuple[str, ...]] = ()
    #: Parts of the state this phase writes, e.g. ``("allocation",)``.
    writes: ClassVar[tuple[str, ...]] = ()
    #: Whether the phase holds the phases after it in a list built by name (its ``phases`` option,
    #: given them by :func:`~safesvd_core.named_phases`), as the tuning phase does.
    holds_following: ClassVar[bool] = False

    def configure(self, draft: PlanDraft) -> None:  # noqa: B027 - optional: most phases own no option
        """In a recipe given as a list of phases, before the run: set the parts of the plan this
        phase's options own (``draft.set(self, solver=...)``). Default: nothing."""

    def check(self, state: RunState) -> None:  # noqa: B027 - optional: most phases check nothing
        """Refuse what cannot work before any phase makes a pass over the data; change nothing and
        call no collective here. Default: nothing."""

    @abstractmethod
    def run(self, state: RunState) -> None:
        """Do the phase's work on ``state``."""


class RunHook:
    """Called around the phases and after every finished stage (e.g. to checkpoint and resume); the
    engine's hook seam. Every method defaults to nothing."""

    def phase_started(self, state: RunState, phase: Phase) -> None:
        """``phase`` is about to run (every phase's ``check`` has passed)."""

    def phase_done(self, state: RunState, phase: Phase) -> None:
        """``phase`` has run."""

    def stage_done(self, state: RunState, stage: Stage) -> None:
        """``stage`` is solved and its layers replaced; ``state.progress.stage_index`` stages are finished."""
