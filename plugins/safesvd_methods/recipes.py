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
    DECOMPOSITIONS,
    DEFAULTS,
    FISHER_MODES,
    LAM_MODES,
    STAGE_MODES,
    CompressionJob,
    CompressionResult,
    ConfigError,
    Phase,
    PhysicsLoss,
    Plan,
    Recipe,
    RolloutSource,
    insert_phase,
    non_negative_int,
    one_of,
    one_step_batches,
    positive,
    positive_int,
    registered,
    registry,
    run_plan,
    trajectory_length,
    unit_interval,
)

from .block_correction import BlockCorrectionPhase
from .merge import MergeSlowPhase
from .refine import RefinePhase
from .tuning import AUTO, TuningPhase

PhysicsSpec = str | Mapping[str, Any] | PhysicsLoss
#: What the run's plan holds for an ``"auto"`` option until the tuning phase chooses it (for
#: ``rollout_steps``: every step the trajectories hold).
AUTO_STAND_INS = {"alpha": DEFAULTS.alpha, "lam_ratio": DEFAULTS.lam_ratio}


def build_physics(specs: tuple[PhysicsSpec, ...]) -> tuple[PhysicsLoss, ...]:
    """Physics losses from names, ``{"name": ..., **options}`` dicts or ready instances."""
    losses = []
    for spec in specs:
        if isinstance(spec, PhysicsLoss):
            losses.append(spec)
        elif isinstance(spec, str):
            losses.append(registry("physics_loss").create(spec))
        elif isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
            options = {key: value for key, value in spec.items() if key != "name"}
            losses.append(registry("physics_loss").create(spec["name"], **options))
        else:
            raise ConfigError(
                "physics entries are loss names, {'name': ..., **options} dicts or PhysicsLoss objects, "
                f"got {spec!r}"
            )
    return tuple(losses)


def _lam(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"lam must be 'auto' or a number ≥ 0, got {value!r}")


def _auto_or(check):
    """A validator: ``"auto"`` (chosen on a held-out split) or what ``check`` accepts."""

    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value != AUTO:
            check(instance, attribute, value)

    return validate


def _steps(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and value != AUTO:
        positive_int(instance, attribute, value)


def _tuple(value: Any) -> tuple:
    if isinstance(value, (str, Mapping, PhysicsLoss)):
        return (value,)
    return tuple(value)


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
    model Fisher), ``seed`` (of those draws).

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

    alpha: float | str = attrs.field(default=DEFAULTS.alpha, validator=_auto_or(unit_interval))
    sensitivity: bool = True
    allocator: str = attrs.field(default="greedy", validator=registered("allocator"))
    allocator_options: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    sequential: bool = True
    stage_mode: str = attrs.field(default=DEFAULTS.stage_mode, validator=one_of(STAGE_MODES))
    physics: tuple[PhysicsSpec, ...] = attrs.field(default=(), converter=_tuple)
    family: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(registered("pde_family"))
    )
    sobolev_order: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(one_of((0, 1, 2)))
    )
    sobolev_p: int = attrs.field(default=1, validator=one_of((1, 2)))
    lam: float | str = attrs.field(default=DEFAULTS.lam, validator=_lam)
    lam_ratio: float | str = attrs.field(default=DEFAULTS.lam_ratio, validator=_auto_or(positive))
    lam_mode: str = attrs.field(default=DEFAULTS.lam_mode, validator=one_of(LAM_MODES))
    lam_cap: float = attrs.field(default=DEFAULTS.lam_cap, validator=positive)
    jitter: float = attrs.field(default=DEFAULTS.jitter, validator=positive)
    fisher_jitter: float = attrs.field(default=DEFAULTS.jitter, validator=positive)
    decomposition: str = attrs.field(default=DEFAULTS.decomposition, validator=one_of(DECOMPOSITIONS))
    min_rank: int = DEFAULTS.min_rank
    fisher: str = attrs.field(default="sampled", validator=one_of(FISHER_MODES))
    seed: int = 0
    rollout: bool = True
    rollout_steps: int | str | None = attrs.field(default=None, validator=_steps)
    balance_horizons: bool = True
    held_out: float = attrs.field(default=0.25, validator=unit_interval)
    refine_epochs: int = attrs.field(default=0, validator=non_negative_int)
    refine_lr: float = attrs.field(default=DEFAULTS.refine_lr, validator=positive)
    merge_slow: bool = False
    block_correction: bool = False

    def phases(self) -> tuple[Phase, ...]:
        """The engine's default phases; with an ``"auto"`` option the tuning phase first, with
        ``merge_slow`` the merge-slow phase before the stages, with ``block_correction`` the
        block-output correction after them, with ``refine_epochs`` the refine phase at the end. A
        subclass adds its own with ``insert_phase(super().phases(), ...)``."""
        phases = super().phases()
        if AUTO in (self.alpha, self.lam_ratio, self.rollout_steps):
            phases = insert_phase(phases, TuningPhase(self), before=phases[0].name)
        if self.merge_slow:
            phases = insert_phase(phases, MergeSlowPhase(), before="stages")
        if self.block_correction:
            phases = insert_phase(phases, BlockCorrectionPhase(), after="stages")
        if self.refine_epochs:
            phases = (*phases, RefinePhase(epochs=self.refine_epochs, lr=self.refine_lr))
        return phases

    def plan(
        self, steps: int | None = None, *, alpha: float | None = None, lam_ratio: float | None = None
    ) -> Plan:
        """The engine plan these options describe, for one-step batches (``steps=None``) or
        ``steps``-step rollouts; ``alpha`` and ``lam_ratio`` resolve an ``"auto"`` option."""
        alpha = self._resolved("alpha", alpha)
        lam_ratio = self._resolved("lam_ratio", lam_ratio)
        clean: tuple[str, ...] = ("clean-covariance",) + (("output-fisher",) if self.sensitivity else ())
        by = (("domain",) if self.balanced else ()) + (("group",) if self._horizon_groups(steps) else ())
        estimator_options: dict[str, dict[str, Any]] = {}
        if by:
            estimator_options["energy-balanced"] = {"inner": clean, "by": by}
            clean = ("energy-balanced",)
        solver = registry("solver").create(
            "whitened",
            alpha=alpha if self.sequential else 0.0,
            sensitivity=self.sensitivity,
            jitter=self.jitter,
            fisher_jitter=self.fisher_jitter,
            decomposition=self.decomposition,
        )
        extra = (
            {}
            if steps is None
            else {"source": RolloutSource(steps=steps, one_step_group=self._horizon_groups(steps))}
        )
        return Plan(
            clean_estimators=clean,
            shifted_estimators=("shifted-covariance",) if self.sequential and alpha > 0 else (),
            solver=solver,
            allocator=registry("allocator").create(
                self.allocator, min_rank=self.min_rank, **self.allocator_options
            ),
            physics=self._physics(),
            lam=self.lam,
            lam_ratio=lam_ratio,
            lam_mode=self.lam_mode,
            lam_cap=self.lam_cap,
            family=registry("pde_family").create(self.family) if self.family else None,
            stage_mode=self.stage_mode,  # type: ignore[arg-type]
            estimator_options=estimator_options,
            fisher=self.fisher,
            seed=self.seed,
            **extra,
        )

    def _resolved(self, option: str, value: float | None) -> float:
        if value is not None:
            return value
        chosen = getattr(self, option)
        if chosen == AUTO:
            raise ConfigError(
                f"{option}='auto' is chosen by compress on a held-out split; pass {option}= to plan()"
            )
        return chosen

    def _horizon_groups(self, steps: int | None) -> bool:
        return self.balance_horizons and steps is not None and steps > 1

    def steps(self, job: CompressionJob) -> int | None:
        """The rollout length for ``job``'s items: ``None`` for one-step batches (or ``rollout`` off)."""
        available = trajectory_length(job.adapter, job.batches)
        if available is None or not self.rollout:
            return None
        if isinstance(self.rollout_steps, int):
            if self.rollout_steps > available:
                raise ConfigError(
                    f"rollout_steps={self.rollout_steps}, but the trajectories hold {available} steps"
                )
            return self.rollout_steps
        return available

    def _physics(self) -> tuple[PhysicsLoss, ...]:
        """Explicit ``physics`` wins; else the family's Sobolev loss (order and p overridable)."""
        if self.physics:
            if self.sobolev_order is not None:
                raise ConfigError(
                    "sobolev_order applies to the family's Sobolev loss; with explicit physics, set it there"
                )
            return build_physics(self.physics)
        if self.family is None:
            if self.sobolev_order is not None:
                raise ConfigError(
                    "sobolev_order needs a family (or an explicit physics=[{'name': 'sobolev', ...}])"
                )
            return ()
        family = registry("pde_family").get(self.family)
        order = family.sobolev_order if self.sobolev_order is None else self.sobolev_order
        return (registry("physics_loss").create("sobolev", order=order, p=self.sobolev_p),)

    def compress(self, job: CompressionJob) -> CompressionResult:
        if self.refine_epochs and job.reducer.world > 1:
            raise ConfigError(
                "refine_epochs does not run distributed yet (its training steps are not synchronised); "
                "refine in one process"
            )
        steps = self.steps(job)
        if steps is None:  # one-step calibration: trajectories become teacher-forced one-step batches
            job = attrs.evolve(job, batches=one_step_batches(job.adapter, job.batches))
        # an "auto" option stands at its default until the tuning phase, the first, chooses it
        stand_ins = {
            option: value for option, value in AUTO_STAND_INS.items() if getattr(self, option) == AUTO
        }
        return run_plan(job, self.plan(steps, **stand_ins), self.phases())


@attrs.frozen(kw_only=True)
class SafeSVDBalanced(SafeSVD):
    """SAFE-SVD with energy-balanced multi-domain statistics (the paper's "Ours*")."""

    name: ClassVar[str] = "safe-svd-balanced"
    balanced: ClassVar[bool] = True
