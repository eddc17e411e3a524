"""The state before any phase: the compressible layers, validated, and the budget they share."""

from __future__ import annotations

from .._errors import BudgetError, ConfigError
from ..model._layers import linear_map
from ._job import CompressionJob, Plan, RunState
from ._outputs import Budget


def start_state(job: CompressionJob, plan: Plan) -> RunState:
    """The state before any phase: the compressible layers and the budget. A ratio that cannot
    be met is known from parameter counts alone, so it is refused here, before any pass."""
    maps = {name: linear_map(job.model, name) for name in validated_layers(job)}
    budget = Budget.of(job.original, maps, job.ratio)
    if budget.factors < 0:
        raise BudgetError(
            f"ratio {job.ratio} gives a budget of {budget.total:,} parameters, fewer than the "
            f"{budget.kept_outside:,} outside the compressible layers, which are always kept: no ratio below "
            f"{budget.kept_outside / budget.params_before:.4f} can be met on this model"
        )
    return RunState(job=job, plan=plan, maps=maps, budget=budget)


def factor_budget(job: CompressionJob) -> int:
    """The weights :func:`run_plan` lets the compressible layers keep (for recipes that allocate
    themselves)."""
    return Budget.of(
        job.original, {name: linear_map(job.model, name) for name in validated_layers(job)}, job.ratio
    ).factors


def validated_layers(job: CompressionJob) -> list[str]:
    """The adapter's compressible layers, each a linear map in both models, none listed twice."""
    names = job.adapter.compressible_layers(job.model)
    if not names:
        raise ConfigError(f"adapter {job.adapter.name!r} found no compressible layer in the model")
    if len(set(names)) != len(names):
        raise ConfigError("the adapter listed a layer twice")
    for name in names:
        linear_map(job.original, name)
    return list(names)
