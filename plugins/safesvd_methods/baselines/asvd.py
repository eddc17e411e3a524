"""``asvd``: activation-aware SVD with ASVD's sensitivity-driven rank search (App. F.1).

Solve: ``D = diag(s_j^a)``, ``s_j = E|x_j|``, ``a = scaling_exponent`` (0.5), ``W' = [W D]_k D⁻¹``,
√Σ into both factors, full SVD (no ``svd_lowrank`` without oversampling). Ranks: the ``asvd``
allocator, by default on the stable-rank sensitivity (the paper's App. F.1 choice; the official
code takes it of the raw ``W``, ``stable_rank_of="weight"``), or ``sensitivity="calibration-loss"``:
the calibration loss with only that layer compressed at each ratio (ASVD's original search; one
pass over ``sensitivity_batches`` batches per layer and ratio), measured by the ``asvd-sensitivity``
phase after the allocation, which then re-allocates with the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import torch

from safesvd_core.plugin import (
    DEFAULTS,
    CalibrationStatistics,
    CompressionJob,
    ConfigError,
    LayerCandidate,
    Phase,
    RunState,
    Solver,
    evaluating,
    insert_phase,
    linear_map,
    one_of,
    positive,
    positive_int,
    rank_at_fraction,
    registered,
    registry,
    set_submodule,
)

from .asvd_search import ASVD_RATIOS, ASVDAllocator, _ratios
from .evaluation import mean_loss
from .recipes import BaselineRecipe
from .scaled import _nonnegative

SENSITIVITIES = ("stable-rank", "calibration-loss")


def loss_table(
    job: CompressionJob,
    solver: Solver,
    statistics: CalibrationStatistics,
    ratios: Sequence[float],
    min_rank: int,
    batches: Sequence[Any],
) -> dict[str, dict[float, float]]:
    """Layer → ratio → calibration loss with only that layer compressed (``job.model`` is restored)."""
    table: dict[str, dict[float, float]] = {}
    with evaluating(job.model):
        dense = mean_loss(job, batches)
        for name in job.adapter.compressible_layers(job.model):
            view = linear_map(job.model, name)
            layer = LayerCandidate(
                name=name,
                out_features=view.out_features,
                in_features=view.in_features,
                spectrum=torch.empty(0),
                order=0,
            )
            table[name] = {}
            for ratio in ratios:
                rank = rank_at_fraction(layer, ratio, min_rank)
                if rank is None:
                    table[name][ratio] = dense
                    continue
                factors = solver.solve(view.weight, rank, statistics.layer(name))
                set_submodule(job.model, name, view.low_rank(factors.first, factors.second))
                try:
                    table[name][ratio] = mean_loss(job, batches)
                finally:
                    set_submodule(job.model, name, view.module)
    return table


@attrs.frozen(kw_only=True)
class ASVDSensitivityPhase(Phase):
    """ASVD's calibration-loss search: the loss table (:func:`loss_table`, the plan's solver on the
    clean statistics, on the first ``batches`` calibration items, all with ``None``), then the
    ``asvd`` allocator fed the table allocates the candidates of the allocation again, within the
    same factor budget. One pass per (layer, ratio) pair plus one for the dense model."""

    name: ClassVar[str] = "asvd-sensitivity"
    reads: ClassVar[tuple[str, ...]] = ("statistics", "allocation")
    writes: ClassVar[tuple[str, ...]] = ("allocation",)

    ratios: tuple[float, ...] = attrs.field(
        default=ASVD_RATIOS, converter=lambda v: tuple(sorted(v)), validator=_ratios
    )
    min_rank: int = attrs.field(default=DEFAULTS.min_rank, validator=positive_int)
    batches: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive_int))

    def check(self, state: RunState) -> None:
        if state.job.reducer.world > 1:
            raise ConfigError(
                "sensitivity='calibration-loss' measures losses in a loop of its own, which is not sharded: "
                "run it in one process or use sensitivity='stable-rank'"
            )

    def run(self, state: RunState) -> None:
        batches = state.job.batches[: self.batches]
        table = loss_table(
            state.job, state.plan.solver, state.statistics.clean, self.ratios, self.min_rank, batches
        )
        allocator = ASVDAllocator(min_rank=self.min_rank, ratios=self.ratios, losses=table)
        ranks = allocator.allocate(list(state.allocation.candidates), state.budget.factors)
        state.allocation = attrs.evolve(state.allocation, ranks=dict(ranks))
        pairs = sum(len(by_ratio) for by_ratio in table.values())
        state.count(self.name, pairs + 1)
        state.log.notes.append(
            f"ASVD sensitivity: calibration loss with each layer alone at each of the ratios "
            f"{list(self.ratios)} ({pairs} pairs, {len(batches)} batch(es) each)"
        )


@attrs.frozen(kw_only=True)
class ASVD(BaselineRecipe):
    """``asvd``: options ``scaling_exponent`` (ASVD's α), ``sensitivity``, ``stable_rank_of``, ``ratios``,
    ``sensitivity_batches`` (calibration-loss only; ``None`` = all), ``allocator`` (any; ``sensitivity``
    only applies to ``"asvd"``), ``min_rank``, ``jitter``."""

    name: ClassVar[str] = "asvd"
    estimators: ClassVar[tuple[str, ...]] = ("input-abs-mean",)
    allocator: str = attrs.field(default="asvd", validator=registered("allocator"))
    scaling_exponent: float = attrs.field(default=0.5, validator=_nonnegative)
    sensitivity: str = attrs.field(default="stable-rank", validator=one_of(SENSITIVITIES))
    stable_rank_of: str = attrs.field(default="weight", validator=one_of(("weight", "scaled")))
    ratios: tuple[float, ...] = attrs.field(
        default=ASVD_RATIOS, converter=lambda v: tuple(sorted(v)), validator=_ratios
    )
    sensitivity_batches: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(positive_int)
    )
    jitter: float = attrs.field(default=DEFAULTS.jitter, validator=positive)

    def __attrs_post_init__(self) -> None:
        if self.sensitivity == "calibration-loss" and self.allocator != "asvd":
            raise ConfigError(
                f"sensitivity='calibration-loss' feeds the 'asvd' allocator; allocator={self.allocator!r} "
                "would ignore it"
            )

    def solver(self) -> Solver:
        proxy = "weight" if self.allocator == "asvd" and self.stable_rank_of == "weight" else "scaled"
        return registry("solver").create(
            "scaled",
            statistic="input_abs_mean",
            exponent=self.scaling_exponent,
            proxy=proxy,
            jitter=self.jitter,
        )

    def allocator_options(self) -> dict[str, Any]:
        return {"ratios": self.ratios} if self.allocator == "asvd" else {}

    def phases(self) -> tuple[Phase, ...]:
        """The engine's phases; with ``sensitivity="calibration-loss"`` the ``asvd-sensitivity`` phase
        after the allocation."""
        phases = super().phases()
        if self.sensitivity == "calibration-loss":
            search = ASVDSensitivityPhase(
                ratios=self.ratios, min_rank=self.min_rank, batches=self.sensitivity_batches
            )
            phases = insert_phase(phases, search, after="allocate")
        return phases
