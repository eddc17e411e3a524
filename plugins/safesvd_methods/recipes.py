"""The SAFE-SVD recipes: ``safe-svd`` and its energy-balanced multi-domain variant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from safesvd_core._engine import CompressionJob, Plan, run_plan
from safesvd_core._errors import ConfigError
from safesvd_core._interfaces import PhysicsLoss, Recipe
from safesvd_core._plugins import registry
from safesvd_core._result import CompressionResult
from safesvd_core._validators import one_of, positive, registered, unit_interval

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
    calibration loss), ``lam`` ("auto" or a number), ``lam_ratio`` (the 10 of λ = 10·L_base/L_phys),
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
    lam: float | str = attrs.field(default="auto", validator=_lam)
    lam_ratio: float = attrs.field(default=10.0, validator=positive)
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
            physics=build_physics(self.physics),
            lam=self.lam,
            lam_ratio=self.lam_ratio,
            stage_mode=self.stage_mode,  # type: ignore[arg-type]
            estimator_options=estimator_options,
        )

    def compress(self, job: CompressionJob) -> CompressionResult:
        return run_plan(job, self.plan())


@attrs.frozen(kw_only=True)
class SafeSVDBalanced(SafeSVD):
    """SAFE-SVD with energy-balanced multi-domain statistics (the paper's "Ours*")."""

    name: ClassVar[str] = "safe-svd-balanced"
    balanced: ClassVar[bool] = True
