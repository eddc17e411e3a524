"""The state before any phase: the compressible layers, validated, and the budget they share."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .._errors import BudgetError, ConfigError
from ..model._layers import is_compressible, linear_map
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
        raise ConfigError(_no_layer(job))
    if len(set(names)) != len(names):
        raise ConfigError("the adapter listed a layer twice")
    for name in names:
        linear_map(job.original, name)
    _check_untied(job.model, names)
    return list(names)


def _check_untied(model: nn.Module, names: Sequence[str]) -> None:
    """Refuse a compressible layer whose weight is one tensor with another parameter (tied): factoring
    it would keep that weight twice, over any budget. The tied places and the fix are named."""
    places: dict[int, list[str]] = {}
    for place, parameter in model.named_parameters(remove_duplicate=False):
        places.setdefault(id(parameter), []).append(place)
    for name in names:
        tied = places.get(id(linear_map(model, name).module.weight), [])
        if len(tied) > 1:
            modules = [place.rpartition(".")[0] for place in tied]
            others = ", ".join(place for place in tied if place != f"{name}.weight")
            raise ConfigError(
                f"layer {name!r} shares its weight with {others} "
                f"(tied: one tensor under {len(tied)} names); factoring it would keep that weight twice, "
                f"over any budget: exclude {modules} with the adapter's exclude globs (adapter_options; "
                "CLI: [adapter] options)"
            )


def _no_layer(job: CompressionJob) -> str:
    """Why ``job``'s adapter selected no layer, and the fix: its selection, or another adapter."""
    model, adapter = job.model, job.adapter
    linear = sum(1 for module in model.modules() if is_compressible(module))
    kind = f"the model ({type(model).__name__})"
    if not linear:
        return (
            f"{kind} has no compressible layer (nn.Linear or 1×1 convolution) that adapter {adapter.name!r} "
            "sees: choose the adapter for this kind of model (`safesvd plugins` lists them)"
        )
    globs = ", ".join(
        f"{option} {list(getattr(adapter, option))}"
        for option in ("include", "exclude")
        if hasattr(adapter, option)
    )
    return (
        f"adapter {adapter.name!r} selected none of the {linear} linear layers of {kind}"
        f"{f' ({globs})' if globs else ''}: widen its include globs or narrow exclude (adapter_options; "
        "CLI: [adapter] options), or choose the adapter for this kind of model (`safesvd plugins` lists them)"
    )
