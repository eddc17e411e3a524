"""The SAFE-SVD recipes: ``safe-svd`` and its energy-balanced multi-domain variant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from safesvd_core.plugin import (
    CompressionJob,
    CompressionResult,
    ConfigError,
    LAM_MODES,
    one_of,
    PhysicsLoss,
    Plan,
    positive,
    Recipe,
    registered,
    registry,
    run_plan,
    unit_interval,
)

PhysicsSpec = str | Mapping[str, Any] | PhysicsLoss


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
            raise ConfigError(f"physics entries are loss names, {{'name': ..., **options}} dicts or PhysicsLoss objects, got {spec!r}")
    return tuple(losses)


def _lam(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"lam must be 'auto' or a number ≥ 0, got {value!r}")


def _tuple(value: Any) -> tuple:
    if isinstance(value, (str, Mapping, PhysicsLoss)):
        return (value,)
    return tuple(value)


@attrs.frozen(kw_only=True)
class SafeSVD(Recipe):
    """SAFE-SVD: Fisher-sensitive, shift-aware whitened SVD with greedy global ranks.

    Options: ``alpha`` (clean/shifted balance), ``sensitivity`` (Fisher ``S`` on/off),
    ``allocator`` (any registered allocator), ``sequential`` (shifted statistics on/off),
    ``stage_mode`` ("auto", "block", "exact"), ``physics`` (loss names/specs added to the
    calibration loss), ``family`` (a PDE family: its Sobolev loss, of order ``sobolev_order`` or
    the family's, with ``sobolev_p``), ``lam`` ("auto" or a number), ``lam_ratio`` (the 10 of
    λ = 10·L_base/L_phys), ``lam_mode`` ("global" or "per-order", capped at ``lam_cap``),
    ``jitter`` and ``fisher_jitter`` (relative), ``min_rank``.
    """

    name: ClassVar[str] = "safe-svd"
    balanced: ClassVar[bool] = False

    alpha: float = attrs.field(default=0.5, validator=unit_interval)
    sensitivity: bool = True
    allocator: str = attrs.field(default="greedy", validator=registered("allocator"))
    sequential: bool = True
    stage_mode: str = attrs.field(default="auto", validator=one_of(("auto", "block", "exact")))
    physics: tuple[PhysicsSpec, ...] = attrs.field(default=(), converter=_tuple)
    family: str | None = attrs.field(default=None, validator=attrs.validators.optional(registered("pde_family")))
    sobolev_order: int | None = attrs.field(default=None, validator=attrs.validators.optional(one_of((0, 1, 2))))
    sobolev_p: int = attrs.field(default=1, validator=one_of((1, 2)))
    lam: float | str = attrs.field(default="auto", validator=_lam)
    lam_ratio: float = attrs.field(default=10.0, validator=positive)
    lam_mode: str = attrs.field(default="global", validator=one_of(LAM_MODES))
    lam_cap: float = attrs.field(default=1000.0, validator=positive)
    jitter: float = attrs.field(default=1e-6, validator=positive)
    fisher_jitter: float = attrs.field(default=1e-6, validator=positive)
    min_rank: int = 1

    def plan(self) -> Plan:
        """The engine plan these options describe."""
        clean: tuple[str, ...] = ("clean-covariance",) + (("output-fisher",) if self.sensitivity else ())
        estimator_options: dict[str, dict[str, Any]] = {}
        if self.balanced:
            estimator_options["energy-balanced"] = {"inner": clean}
            clean = ("energy-balanced",)
        solver = registry("solver").create(
            "whitened", alpha=self.alpha if self.sequential else 0.0, sensitivity=self.sensitivity,
            jitter=self.jitter, fisher_jitter=self.fisher_jitter,
        )
        return Plan(
            clean_estimators=clean,
            shifted_estimators=("shifted-covariance",) if self.sequential and self.alpha > 0 else (),
            solver=solver,
            allocator=registry("allocator").create(self.allocator, min_rank=self.min_rank),
            physics=self._physics(),
            lam=self.lam,
            lam_ratio=self.lam_ratio,
            lam_mode=self.lam_mode,
            lam_cap=self.lam_cap,
            family=registry("pde_family").create(self.family) if self.family else None,
            stage_mode=self.stage_mode,  # type: ignore[arg-type]
            estimator_options=estimator_options,
        )

    def _physics(self) -> tuple[PhysicsLoss, ...]:
        """Explicit ``physics`` wins; else the family's Sobolev loss (order and p overridable)."""
        if self.physics:
            if self.sobolev_order is not None:
                raise ConfigError("sobolev_order applies to the family's Sobolev loss; with explicit physics, set it there")
            return build_physics(self.physics)
        if self.family is None:
            if self.sobolev_order is not None:
                raise ConfigError("sobolev_order needs a family (or an explicit physics=[{'name': 'sobolev', ...}])")
            return ()
        family = registry("pde_family").get(self.family)
        order = family.sobolev_order if self.sobolev_order is None else self.sobolev_order
        return (registry("physics_loss").create("sobolev", order=order, p=self.sobolev_p),)

    def compress(self, job: CompressionJob) -> CompressionResult:
        return run_plan(job, self.plan())


@attrs.frozen(kw_only=True)
class SafeSVDBalanced(SafeSVD):
    """SAFE-SVD with energy-balanced multi-domain statistics (the paper's "Ours*")."""

    name: ClassVar[str] = "safe-svd-balanced"
    balanced: ClassVar[bool] = True
