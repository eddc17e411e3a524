"""The SAFE-SVD recipes: ``safe-svd`` and its energy-balanced multi-domain variant.

Given trajectory items, both calibrate on rollouts (``rollout``): the Fisher of the K-step loss,
statistics over every state the rollout visits, shifted statistics from the partially compressed
model's own rollout, and (``balance_horizons``) the one-step and the rollout statistics balanced
by energy, so that neither horizon is bought with the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from safesvd_core.plugin import (
    AUTO,
    DEFAULTS,
    AllocationPhase,
    CleanStatisticsPhase,
    CompressionJob,
    CompressionResult,
    ConfigError,
    LambdaPhase,
    Phase,
    PhysicsSpec,
    Plan,
    ProbePhase,
    Recipe,
    StagesPhase,
    draft_plan,
    insert_phase,
    non_negative_int,
    positive,
    registered,
    run_phase_list,
    unit_interval,
)

from .block_correction import BlockCorrectionPhase
from .merge import MergeSlowPhase
from .refine import RefinePhase
from .tuning import TuningPhase


def option(phase: type[Phase], name: str, validator: Any = None) -> Any:
    """A recipe option that is ``phase``'s option ``name``: its default and converter, the phase kept in
    the field's metadata (:meth:`SafeSVD.options_of`); ``validator`` checks it at the recipe's
    construction too (the phase validates it when the recipe builds its phases)."""
    field = attrs.fields_dict(phase)[name]
    default = (
        {"factory": field.default.factory}
        if isinstance(field.default, attrs.Factory)  # type: ignore[arg-type]
        else {"default": field.default}
    )
    return attrs.field(**default, converter=field.converter, validator=validator, metadata={"phase": phase})


@attrs.frozen(kw_only=True)
class SafeSVD(Recipe):
    """SAFE-SVD: Fisher-sensitive, shift-aware whitened SVD with greedy global ranks.

    Options: ``alpha`` (clean/shifted balance), ``sensitivity`` (Fisher ``S`` on/off), ``allocator`` (any
    registered allocator) with ``allocator_options``, ``sequential`` (shifted statistics on/off),
    ``stage_mode`` ("auto" = "layer" with blocks, "block", "layer", "exact"), ``physics`` (loss
    names/specs added to the calibration loss), ``family`` (a PDE family: its Sobolev loss, of order
    ``sobolev_order`` or the family's, with ``sobolev_p``), ``lam`` ("auto" or a number), ``lam_ratio``
    (the 10 of λ = 10·L_base/L_phys), ``lam_mode`` ("global" or "per-order", capped at ``lam_cap``),
    ``jitter`` and ``fisher_jitter`` (relative), ``decomposition`` (``"gram"``: one eigendecomposition
    per layer, checked, falling back to ``"svd"``), ``min_rank``, ``fisher`` (``"empirical"``: the gradients
    at the model's residuals, the paper's; ``"sampled"``: at residuals drawn at the observed scale, the
    model Fisher), ``seed`` (of those draws), ``recompute_blocks`` (the Fisher's backward pass runs
    each block again instead of holding its intermediate tensors; ``None``: with a ``SpillPolicy``).

    Rollouts, given trajectory items: ``rollout`` (on: calibrate on rollouts; off: on the
    trajectories' teacher-forced one-step batches), ``rollout_steps`` (``None``: every step the
    trajectories hold; a number up to that), ``balance_horizons`` (energy-balance the one-step
    and the rollout statistics). ``"auto"`` for ``alpha``, ``lam_ratio`` or ``rollout_steps``
    chooses it on a held-out share (``held_out``) of the calibration items (see ``tuning``).

    Beyond the paper: ``refine_epochs``/``refine_lr`` (distil the factors after the solve);
    ``merge_slow`` (keep dense every layer whose factored form is not faster on its device, the
    budget re-allocated; see ``reports["merge-slow"]``); ``allocator="latency"`` (ranks by energy
    per measured second); ``block_correction`` (each block's output layer solved again against the
    original block's output, training-free; see ``reports["block-correction"]``).
    """

    name: ClassVar[str] = "safe-svd"
    balanced: ClassVar[bool] = False
    handles_trajectories: ClassVar[bool] = True
    distributed: ClassVar[bool] = True
    configured: ClassVar[bool] = True

    # the phases' options (validated by the phases, built at construction), then the recipe's own
    alpha: float | str = option(StagesPhase, "alpha")
    sensitivity: bool = option(CleanStatisticsPhase, "sensitivity")
    allocator: str = option(AllocationPhase, "allocator", registered("allocator"))
    allocator_options: Mapping[str, Any] = option(AllocationPhase, "allocator_options")
    sequential: bool = option(StagesPhase, "sequential")
    stage_mode: str = option(StagesPhase, "stage_mode")
    physics: tuple[PhysicsSpec, ...] = option(LambdaPhase, "physics")
    family: str | None = option(LambdaPhase, "family", attrs.validators.optional(registered("pde_family")))
    sobolev_order: int | None = option(LambdaPhase, "sobolev_order")
    sobolev_p: int = option(LambdaPhase, "sobolev_p")
    lam: float | str = option(LambdaPhase, "lam")
    lam_ratio: float | str = option(LambdaPhase, "lam_ratio")
    lam_mode: str = option(LambdaPhase, "lam_mode")
    lam_cap: float = option(LambdaPhase, "lam_cap")
    jitter: float = option(StagesPhase, "jitter")
    fisher_jitter: float = option(StagesPhase, "fisher_jitter")
    decomposition: str = option(StagesPhase, "decomposition")
    min_rank: int = option(AllocationPhase, "min_rank")
    fisher: str = option(CleanStatisticsPhase, "fisher")
    seed: int = option(CleanStatisticsPhase, "seed")
    rollout: bool = option(CleanStatisticsPhase, "rollout")
    rollout_steps: int | str | None = option(CleanStatisticsPhase, "rollout_steps")
    balance_horizons: bool = option(CleanStatisticsPhase, "balance_horizons")
    recompute_blocks: bool | None = option(CleanStatisticsPhase, "recompute_blocks")
    held_out: float = attrs.field(default=0.25, validator=unit_interval)
    refine_epochs: int = attrs.field(default=0, validator=non_negative_int)
    refine_lr: float = attrs.field(default=DEFAULTS.refine_lr, validator=positive)
    merge_slow: bool = False
    block_correction: bool = False

    def __attrs_post_init__(self) -> None:
        self.phases()  # every phase validates its options: a bad one is refused at construction

    def phases(self) -> tuple[Phase, ...]:
        """The recipe as a list of configured phases: the engine's default phases with these options;
        with an ``"auto"`` option the tuning phase first, with ``merge_slow`` the merge-slow phase
        before the stages, with ``block_correction`` the block-output correction after them, with
        ``refine_epochs`` the refine phase at the end. A subclass adds its own with
        ``insert_phase(super().phases(), ...)``."""
        phases: tuple[Phase, ...] = (
            ProbePhase(),
            LambdaPhase(**self.options_of(LambdaPhase)),
            CleanStatisticsPhase(**self.options_of(CleanStatisticsPhase), balance_domains=self.balanced),
            AllocationPhase(**self.options_of(AllocationPhase)),
            StagesPhase(**self.options_of(StagesPhase)),
        )
        if self.merge_slow:
            phases = insert_phase(phases, MergeSlowPhase(), before="stages")
        if self.block_correction:
            phases = insert_phase(phases, BlockCorrectionPhase(), after="stages")
        if self.refine_epochs:
            phases = (*phases, RefinePhase(epochs=self.refine_epochs, lr=self.refine_lr))
        if AUTO in (self.alpha, self.lam_ratio, self.rollout_steps):
            phases = (TuningPhase(phases=phases, held_out=self.held_out), *phases)
        return phases

    def options_of(self, phase: type[Phase]) -> dict[str, Any]:
        """This recipe's options that are ``phase``'s (declared with :func:`option`)."""
        return {
            field.name: getattr(self, field.name)
            for field in attrs.fields(type(self))
            if field.metadata.get("phase") is phase
        }

    def plan(
        self, steps: int | None = None, *, alpha: float | None = None, lam_ratio: float | None = None
    ) -> Plan:
        """The engine plan these options describe, for one-step batches (``steps=None``) or
        ``steps``-step rollouts; ``alpha`` and ``lam_ratio`` resolve an ``"auto"`` option."""
        chosen = {
            "alpha": self._resolved("alpha", alpha),
            "lam_ratio": self._resolved("lam_ratio", lam_ratio),
        }
        recipe = attrs.evolve(self, rollout=steps is not None, rollout_steps=steps, **chosen)
        return draft_plan(recipe.phases())

    def _resolved(self, option: str, value: float | None) -> float:
        if value is not None:
            return value
        chosen = getattr(self, option)
        if chosen == AUTO:
            raise ConfigError(
                f"{option}='auto' is chosen by compress on a held-out split; pass {option}= to plan()"
            )
        return chosen

    def compress(self, job: CompressionJob) -> CompressionResult:
        return run_phase_list(job, self.phases())


@attrs.frozen(kw_only=True)
class SafeSVDBalanced(SafeSVD):
    """SAFE-SVD with energy-balanced multi-domain statistics (the paper's "Ours*")."""

    name: ClassVar[str] = "safe-svd-balanced"
    balanced: ClassVar[bool] = True
