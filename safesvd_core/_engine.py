"""The run loop shared by the recipes: a :class:`RunState` passed through a tuple of phases.

The default phases (METHOD.md, "Sequential compression"), each a module of its own:

1. probe (:mod:`._probe`): one forward pass on the first item: layer order, calls, block inputs;
2. λ (:mod:`._lambda`): the physics weight (one no-grad pass with ``lam="auto"``) and the objective;
3. clean statistics (:mod:`._clean`): the clean estimators over the calibration set;
4. allocation (:mod:`._allocate`): ranks from proxy spectra under the budget;
5. stages (:mod:`._stages`): shifted statistics, solve and replace, stage by stage.

Every phase's :meth:`~Phase.check` runs before any phase does, so what cannot work is refused
before a pass over the data.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

from torch import nn

from ._allocate import AllocationPhase
from ._clean import CleanStatisticsPhase
from ._errors import BudgetError, ConfigError
from ._job import CompressionJob, Phase, Plan, RunState
from ._lambda import LambdaPhase
from ._layers import LinearMap, linear_map
from ._modules import count_parameters
from ._probe import ProbePhase
from ._result import CompressionResult
from ._stages import StagesPhase
from ._statistics import CalibrationStatistics

DEFAULT_PHASES: tuple[Phase, ...] = (ProbePhase(), LambdaPhase(), CleanStatisticsPhase(), AllocationPhase(), StagesPhase())


def run_plan(job: CompressionJob, plan: Plan, phases: Sequence[Phase] = DEFAULT_PHASES) -> CompressionResult:
    """Compress ``job.model`` in place following ``plan`` through ``phases``; the original stays untouched."""
    start = time.perf_counter()
    state = start_state(job, plan)
    run_phases(state, phases)
    state.timings["total"] = time.perf_counter() - start
    return finish(state)


def _budgets(job: CompressionJob) -> tuple[dict[str, LinearMap], int, int, int]:
    """``(layers, N_total, ⌊ratio · N_total⌋, parameters outside the compressible weights)``."""
    maps = {name: linear_map(job.model, name) for name in validated_layers(job)}
    params_before = count_parameters(job.original)
    kept_outside = params_before - sum(view.in_features * view.out_features for view in maps.values())
    return maps, params_before, int(job.ratio * params_before), kept_outside


def start_state(job: CompressionJob, plan: Plan) -> RunState:
    """The state before any phase: the compressible layers and the budgets. A ratio that cannot
    be met is known from parameter counts alone, so it is refused here, before any pass."""
    maps, params_before, budget, kept_outside = _budgets(job)
    if budget < kept_outside:
        raise BudgetError(
            f"ratio {job.ratio} gives a budget of {budget:,} parameters, fewer than the {kept_outside:,} outside "
            f"the compressible layers, which are always kept: no ratio below {kept_outside / params_before:.4f} "
            "can be met on this model"
        )
    return RunState(job=job, plan=plan, maps=maps, params_before=params_before, budget=budget,
                    factor_budget=budget - kept_outside)


def run_phases(state: RunState, phases: Sequence[Phase]) -> None:
    """Check every phase, then run each in turn (timed under its name, the job's hooks around it),
    both models in eval mode."""
    for phase in phases:
        phase.check(state)
    with evaluating(state.job.original), evaluating(state.job.model):
        for phase in phases:
            for hook in state.job.hooks:
                hook.phase_started(state, phase)
            with state.timed(phase.name):
                phase.run(state)
            for hook in state.job.hooks:
                hook.phase_done(state, phase)


def finish(state: RunState) -> CompressionResult:
    """The result of a finished run; over budget is a :class:`BudgetError` unless the plan may miss it."""
    job, plan = state.job, state.plan
    params_after = count_parameters(job.model)
    if params_after > state.budget:
        over = params_after - state.budget
        message = (f"compressed model keeps {params_after:,} parameters, over the budget of {state.budget:,} "
                   f"by {over:,} ({100.0 * over / state.budget:.1f} %)")
        if not plan.may_miss_budget:
            raise BudgetError(message)
        state.notes.append(message)
    return CompressionResult(
        model=job.model, recipe=job.recipe, options=dict(job.options), ratio=job.ratio, ranks=dict(state.ranks),
        params_before=state.params_before, params_after=params_after, budget=state.budget, records=state.records,
        timings=state.timings, passes=state.passes, lam=state.lam, layer_order=list(state.probe.order),
        objective=plan.describe(), stages=[list(stage.layers) for stage in state.stages], statistics=state.statistics,
        notes=state.notes, spectra={name: values.detach().double().cpu() for name, values in state.spectra.items()},
        reports=state.reports,
    )


def factor_budget(job: CompressionJob) -> int:
    """The weights :func:`run_plan` lets the compressible layers keep (for recipes that allocate themselves)."""
    _, _, budget, kept_outside = _budgets(job)
    return budget - kept_outside


def clean_statistics(job: CompressionJob, plan: Plan) -> CalibrationStatistics:
    """The clean statistics of ``plan`` (λ balanced as :func:`run_plan` does), or ``job.statistics``.

    For recipes that need them before allocation (a sensitivity search, a training loop): give the
    result back as ``job.statistics`` and :func:`run_plan` takes neither the λ nor the clean pass again.
    """
    if job.statistics is not None:
        return job.statistics
    state = start_state(job, plan)
    run_phases(state, (LambdaPhase(), CleanStatisticsPhase()))
    return state.statistics


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


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode for the block; every module's own mode is restored afterwards."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.train(mode)
