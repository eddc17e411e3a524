"""The closed-form baselines as engine plans: ``svd``, ``fwsvd``, ``svd-llm``, ``svd-llm-v2``, ``saes-svd``.

Each recipe is a frozen attrs class whose fields are its options; every one takes any registered
allocator by name (``allocator="greedy"``), ranking the solver's proxy spectrum. All use the
adapter's compressible layers, the same set for every recipe.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from safesvd_core.plugin import (
    DECOMPOSITIONS,
    DEFAULTS,
    Allocator,
    CompressionJob,
    CompressionResult,
    Plan,
    Recipe,
    Solver,
    one_of,
    positive,
    positive_int,
    registered,
    registry,
    run_plan,
)

from .aces import BETA_RANGE, _beta, _beta_range


@attrs.frozen(kw_only=True)
class BaselineRecipe(Recipe):
    """A recipe that is one engine plan: estimators, a solver and any allocator (``min_rank`` ≥ 1)."""

    allocator: str = attrs.field(default="uniform", validator=registered("allocator"))
    min_rank: int = attrs.field(default=DEFAULTS.min_rank, validator=positive_int)

    distributed: ClassVar[bool] = True

    #: Clean estimators the solver needs.
    estimators: ClassVar[tuple[str, ...]] = ()
    #: Shifted estimators (sequential recipes).
    shifted_estimators: ClassVar[tuple[str, ...]] = ()

    def solver(self) -> Solver:
        raise NotImplementedError

    def allocator_options(self) -> dict[str, Any]:
        """Options beyond ``min_rank`` for the recipe's own default allocator."""
        return {}

    def make_allocator(self) -> Allocator:
        return registry("allocator").create(
            self.allocator, min_rank=self.min_rank, **self.allocator_options()
        )

    def plan(self) -> Plan:
        """The engine plan these options describe."""
        return Plan(
            clean_estimators=self.estimators,
            shifted_estimators=self.shifted_estimators,
            solver=self.solver(),
            allocator=self.make_allocator(),
        )

    def compress(self, job: CompressionJob) -> CompressionResult:
        return run_plan(job, self.plan(), self.phases())


@attrs.frozen(kw_only=True)
class PlainSVD(BaselineRecipe):
    """``svd``: the truncated SVD of each weight, uniform ranks, no statistics at all."""

    name: ClassVar[str] = "svd"

    def solver(self) -> Solver:
        return registry("solver").create("svd")


@attrs.frozen(kw_only=True)
class FWSVD(BaselineRecipe):
    """``fwsvd``: Fisher-weighted SVD, ``D = diag(√I_j)`` from the task-loss weight gradients."""

    name: ClassVar[str] = "fwsvd"
    estimators: ClassVar[tuple[str, ...]] = ("weight-fisher",)
    jitter: float = attrs.field(default=DEFAULTS.jitter, validator=positive)

    def solver(self) -> Solver:
        return registry("solver").create(
            "scaled", statistic="weight_fisher", exponent=0.5, jitter=self.jitter
        )


@attrs.frozen(kw_only=True)
class SVDLLM(BaselineRecipe):
    """``svd-llm``: truncation-aware whitening, ``H = L Lᵀ`` (float64 Cholesky), ``W' = [W L]_k L⁻¹``,
    with the full SVD of ``W L``, as the method is published (``decomposition="svd"``, the default;
    ``"gram"`` gives it safesvd's Gram route: the same minimiser, for comparing costs)."""

    name: ClassVar[str] = "svd-llm"
    estimators: ClassVar[tuple[str, ...]] = ("clean-covariance",)
    jitter: float = attrs.field(default=DEFAULTS.jitter, validator=positive)
    decomposition: str = attrs.field(default="svd", validator=one_of(DECOMPOSITIONS))

    def solver(self) -> Solver:
        return registry("solver").create(
            "whitened", alpha=0.0, sensitivity=False, jitter=self.jitter, decomposition=self.decomposition
        )


@attrs.frozen(kw_only=True)
class SVDLLMV2(BaselineRecipe):
    """``svd-llm-v2``: the eigen route on the Gram sum and the grouped heterogeneous allocation.

    ``fix_budget=False`` keeps the allocation as the method defines it; the result then reports by
    how much it misses the budget in ``notes`` instead of raising.
    """

    name: ClassVar[str] = "svd-llm-v2"
    estimators: ClassVar[tuple[str, ...]] = ("clean-gram",)
    allocator: str = attrs.field(default="grouped", validator=registered("allocator"))
    fix_budget: bool = True
    rcond: float | None = attrs.field(default=None, validator=attrs.validators.optional(positive))

    def solver(self) -> Solver:
        return registry("solver").create("eigen-whitened", statistic="gram", rcond=self.rcond)

    def allocator_options(self) -> dict[str, Any]:
        return {"fix_budget": self.fix_budget} if self.allocator == "grouped" else {}

    def plan(self) -> Plan:
        return attrs.evolve(
            super().plan(), may_miss_budget=self.allocator == "grouped" and not self.fix_budget
        )


@attrs.frozen(kw_only=True)
class SAESSVD(BaselineRecipe):
    """``saes-svd``: sequential, target ``W(X̃ + β(X − X̃))`` with ACES's ``β`` (``beta=None``) or a fixed one.

    Shifted statistics come stage by stage like safe-svd's (``stage_mode``); the allocation ranks
    SVD-LLM's clean whitened spectrum.
    """

    name: ClassVar[str] = "saes-svd"
    estimators: ClassVar[tuple[str, ...]] = ("clean-covariance",)
    shifted_estimators: ClassVar[tuple[str, ...]] = ("shifted-covariance",)
    beta: float | None = attrs.field(default=None, validator=_beta)
    beta_range: tuple[float, float] = attrs.field(default=BETA_RANGE, converter=tuple, validator=_beta_range)
    stage_mode: str = attrs.field(default=DEFAULTS.stage_mode, validator=one_of(("auto", "block", "exact")))
    jitter: float = attrs.field(default=DEFAULTS.jitter, validator=positive)

    def solver(self) -> Solver:
        return registry("solver").create(
            "aces", beta=self.beta, beta_range=self.beta_range, jitter=self.jitter
        )

    def plan(self) -> Plan:
        return attrs.evolve(super().plan(), stage_mode=self.stage_mode)
