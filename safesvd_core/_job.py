"""A compression run's types: what is asked (the job, the plan), what is known so far (the run
state), and the contracts that act on them (recipes, phases, run hooks)."""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs
from torch import Tensor, nn

from ._errors import ConfigError, SafeSVDError
from ._family import PDEFamily
from ._interfaces import Allocator, LayerCandidate, ModelAdapter, PhysicsLoss, Solver, SolveRecord
from ._layers import LinearMap
from ._objective import RESIDUALS, CalibrationObjective
from ._plugins import registry
from ._seams import BatchSource, LocalReducer, PairSource, StatisticsReducer
from ._spill import SpillPolicy
from ._statistics import CalibrationStatistics

if TYPE_CHECKING:
    from ._result import CompressionResult

StageMode = Literal["auto", "block", "layer", "exact"]
STAGE_MODES = ("auto", "block", "layer", "exact")


@attrs.define(kw_only=True)
class CompressionJob:
    """Everything a recipe needs: the untouched original, the model to compress, the data, and
    the job-level seams (how work and statistics are shared across processes; the run hooks)."""

    original: nn.Module
    model: nn.Module
    batches: Sequence[Any]
    adapter: ModelAdapter
    ratio: float
    recipe: str
    options: dict[str, Any]
    statistics: CalibrationStatistics | None = None
    progress: bool = False
    spill: SpillPolicy | None = None
    reducer: StatisticsReducer = attrs.field(factory=LocalReducer)
    hooks: tuple[RunHook, ...] = ()


def _provided(clean: Sequence[str], shifted: Sequence[str], options: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    estimators = registry("estimator")
    return frozenset().union(*(estimators.get(name).provided(**options.get(name, {})) for name in (*clean, *shifted)))


@attrs.frozen(kw_only=True)
class Plan:
    """A recipe's composition: which estimators run when, which solver and allocator, the
    calibration objective, the batch source and the phases of the run.

    At construction the solver's ``requires`` must be among what the estimators provide.
    """

    clean_estimators: tuple[str, ...]
    shifted_estimators: tuple[str, ...] = ()
    solver: Solver
    allocator: Allocator
    physics: tuple[PhysicsLoss, ...] = ()
    lam: float | str = "auto"
    lam_ratio: float = 10.0
    lam_mode: str = "global"
    lam_cap: float = 1000.0
    family: PDEFamily | None = None
    stage_mode: StageMode = "auto"
    estimator_options: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    #: A recipe that cannot meet the budget by construction (e.g. SVD-LLM V2) sets this: the
    #: result then reports the miss in ``notes`` instead of raising :class:`BudgetError`.
    may_miss_budget: bool = False
    #: How a calibration item becomes model calls and a loss (one-step pairs by default).
    source: BatchSource = attrs.field(factory=PairSource)
    #: Where the Fisher's gradients are taken: ``"observed"`` residuals (the paper's empirical
    #: Fisher) or ``"sampled"`` ones (the model Fisher), with ``seed`` for the draws.
    residual: str = "observed"
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        if self.residual not in RESIDUALS:
            raise ConfigError(f"residual must be one of {', '.join(map(repr, RESIDUALS))}, got {self.residual!r}")
        if self.stage_mode not in STAGE_MODES:
            raise ConfigError(f"stage_mode must be one of {', '.join(map(repr, STAGE_MODES))}, got {self.stage_mode!r}")
        provided = _provided(self.clean_estimators, self.shifted_estimators, self.estimator_options)
        missing = sorted(set(self.solver.requires) - provided)
        if missing:
            raise ConfigError(
                f"solver {self.solver.name!r} needs the statistics {missing}, which none of the plan's estimators "
                f"({', '.join((*self.clean_estimators, *self.shifted_estimators)) or 'none'}) provides "
                f"(they provide {sorted(provided)})"
            )

    @property
    def sequential(self) -> bool:
        return bool(self.shifted_estimators)

    def describe(self) -> dict[str, Any]:
        """The calibration objective and the solver, JSON-ready (``CompressionResult.objective``)."""
        solver = {field.name: getattr(self.solver, field.name) for field in attrs.fields(type(self.solver))} \
            if attrs.has(type(self.solver)) else {}
        return {"physics": [repr(loss) for loss in self.physics], "lam_mode": self.lam_mode,
                "family": self.family.name if self.family else None, "residual": self.residual,
                "source": repr(self.source),
                "solver": {"name": self.solver.name, **{key: value for key, value in solver.items()
                                                        if value is None or isinstance(value, (bool, int, float, str))}}}


class Recipe(ABC):
    """A named compression method: a composition of the other kinds plus options.

    Concrete recipes are frozen attrs classes whose fields are the options users pass to
    :func:`safesvd_core.compress`. A recipe that sets ``handles_trajectories`` receives trajectory
    items as they are (see ``ModelAdapter.trajectory_steps``); any other recipe receives them as
    teacher-forced one-step batches (``one_step_batches``). A recipe that sets ``distributed``
    may run on a shard of the items per process.
    """

    name: ClassVar[str]
    handles_trajectories: ClassVar[bool] = False
    #: Whether the recipe runs distributed: only through ``run_plan``/``clean_statistics``, whose
    #: passes are sharded and reduced (a calibration loop of its own would not be).
    distributed: ClassVar[bool] = False

    @abstractmethod
    def compress(self, job: CompressionJob) -> CompressionResult:
        """Run the compression described by ``job``."""


@attrs.frozen
class Stage:
    """Layers solved together; ``block`` is the block they run in, or None for an exact stage."""

    layers: tuple[str, ...]
    block: str | None


@attrs.frozen
class Probe:
    """What running the first calibration item showed: the layers in call order, the calls per
    layer and per block (a rollout calls each K times), the blocks in call order and each block's
    first input."""

    order: tuple[str, ...]
    calls: Mapping[str, int]
    block_order: tuple[str, ...]
    block_inputs: Mapping[str, Tensor]
    block_calls: Mapping[str, int] = attrs.field(factory=dict)
    #: Rows (flattened samples) of each layer's first call.
    rows: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def chained_blocks(self) -> bool:
        """Whether block inputs may be carried from block to block: each block runs once per item."""
        return all(calls == 1 for calls in self.block_calls.values())


@attrs.define(kw_only=True)
class RunState:
    """What a run of :func:`~safesvd_core.plugin.run_plan` knows so far; each phase reads and extends it.

    Set at the start: the job, the plan, the compressible layers (``maps``) and the budgets. Then,
    by the default phases in turn: ``probe``; ``lam`` and ``objective``; ``statistics`` (clean;
    with the ``spectra`` of spilled layers, taken while they were in memory); ``spectra``, ``candidates`` (what the allocator saw) and ``ranks``; ``stages`` and, stage by stage, ``records`` and ``stage_index`` (stages finished).
    ``timings`` (seconds) and ``passes`` (over the calibration set) are kept by phase.
    """

    job: CompressionJob
    plan: Plan
    maps: dict[str, LinearMap]
    params_before: int
    budget: int
    factor_budget: int
    probe: Probe | None = None
    lam: float | None = None
    objective: CalibrationObjective | None = None
    clean_groups: list[list[str]] | None = None
    statistics: CalibrationStatistics | None = None
    spectra: dict[str, Tensor] = attrs.field(factory=dict)
    rows: dict[str, int] = attrs.field(factory=dict)
    candidates: list[LayerCandidate] = attrs.field(factory=list)
    ranks: dict[str, int | None] = attrs.field(factory=dict)
    stages: list[Stage] = attrs.field(factory=list)
    stage_index: int = 0
    records: dict[str, SolveRecord] = attrs.field(factory=dict)
    timings: dict[str, float] = attrs.field(factory=dict)
    passes: dict[str, int] = attrs.field(factory=dict)
    notes: list[str] = attrs.field(factory=list)
    #: Phase name → what the phase reports (JSON-ready), e.g. the layers merged back to dense.
    reports: dict[str, Any] = attrs.field(factory=dict)

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

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the wall time of the block to ``timings[phase]``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - start

    def count(self, phase: str, passes: int = 1) -> None:
        """Record ``passes`` more passes over the calibration set in ``phase``."""
        self.passes[phase] = self.passes.get(phase, 0) + passes

    def need(self, attribute: str, by: str) -> Any:
        """``self.<attribute>``, or a clear error naming the phase that should have set it."""
        value = getattr(self, attribute)
        if value is None:
            raise SafeSVDError(f"phase {by!r} needs {attribute!r}, which no earlier phase set; check the plan's phases")
        return value


class Phase(ABC):
    """One step of :func:`~safesvd_core.plugin.run_plan`: reads and extends the :class:`RunState`."""

    name: ClassVar[str]

    def check(self, state: RunState) -> None:
        """Refuse what cannot work before any phase makes a pass over the data. Default: nothing."""

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
        """``stage`` is solved and its layers replaced; ``state.stage_index`` stages are finished."""
