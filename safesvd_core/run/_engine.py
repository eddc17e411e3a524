"""The run loop shared by the recipes: a :class:`RunState` passed through a tuple of phases.

The default phases (docs/method.md, "Pipeline" and "Stages"), each a module of its own:

1. probe (:mod:`._probe`): one forward pass on the first item: layer order, calls, block inputs;
2. λ (:mod:`._lambda`): the physics weight (one no-grad pass with ``lam="auto"``) and the objective;
3. clean statistics (:mod:`._clean`): the clean estimators over the calibration set;
4. allocation (:mod:`._allocate`): ranks from proxy spectra under the budget;
5. stages (:mod:`._stages`): shifted statistics, solve and replace, stage by stage.

Each phase declares the parts of the :class:`RunState` it reads and writes; the declarations of
the whole list and every phase's :meth:`~Phase.check` are checked before any phase runs, so what
cannot work is refused before a pass over the data.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import attrs

from .._errors import BudgetError, ConfigError
from ..model._modules import count_parameters, evaluating
from ..statistics._statistics import CalibrationStatistics
from ._job import CompressionJob, Phase, Plan, RunState
from ._phase_order import check_phases, check_written
from ._plan_draft import PlanDraft
from ._result import CompressionResult
from ._start import start_state
from .phases._allocate import AllocationPhase
from .phases._clean import CleanStatisticsPhase
from .phases._lambda import LambdaPhase
from .phases._probe import ProbePhase
from .phases._stages import StagesPhase

DEFAULT_PHASES: tuple[Phase, ...] = (
    ProbePhase(),
    LambdaPhase(),
    CleanStatisticsPhase(),
    AllocationPhase(),
    StagesPhase(),
)


def run_plan(job: CompressionJob, plan: Plan, phases: Sequence[Phase] = DEFAULT_PHASES) -> CompressionResult:
    """Compress ``job.model`` in place following ``plan`` through ``phases``; the original stays
    untouched. The plan is given, so a phase whose options would configure one
    (:func:`run_phase_list`) must keep its defaults: they would be ignored."""
    ignored = [phase.name for phase in phases if _configured(phase, job)]
    if ignored:
        raise ConfigError(
            f"the phases {', '.join(map(repr, ignored))} were given options, but run_plan takes its plan "
            "as given and would ignore them; run the list with run_phase_list (or compress(recipe=[...]))"
        )
    return execute(job, plan, phases)


def _configured(phase: Phase, job: CompressionJob) -> bool:
    """Whether ``phase`` would set parts of a plan, from options other than its defaults (a phase at
    its defaults, the common case, is not configured: nothing else is asked of it)."""
    if type(phase).configure is Phase.configure or not attrs.has(type(phase)):
        return False
    try:
        if phase == type(phase)():
            return False
    except TypeError:  # options with no default: configured by construction
        pass
    draft = PlanDraft(job)
    phase.configure(draft)
    return bool(draft.parts)


def execute(job: CompressionJob, plan: Plan, phases: Sequence[Phase]) -> CompressionResult:
    """:func:`run_plan` without its check of the phases' options (the plan was assembled from them)."""
    start = time.perf_counter()
    state = start_state(job, plan)
    run_phases(state, (*phases, *job.closing_phases))
    state.log.timings["total"] = time.perf_counter() - start
    return finish(state)


def run_phases(state: RunState, phases: Sequence[Phase]) -> None:
    """Check the phases' declarations and every phase, then run each in turn (timed under its
    name, the job's hooks around it), both models in eval mode."""
    check_phases(state, phases, DEFAULT_PHASES)
    for phase in phases:
        phase.check(state)
    with evaluating(state.job.original), evaluating(state.job.model):
        for phase in phases:
            for hook in state.job.hooks:
                hook.phase_started(state, phase)
            with state.timed(phase.name):
                phase.run(state)
            check_written(state, phase)
            for hook in state.job.hooks:
                hook.phase_done(state, phase)


def finish(state: RunState) -> CompressionResult:
    """The result of a finished run; over budget is a :class:`BudgetError` unless the plan may miss it."""
    job, plan, log, budget = state.job, state.plan, state.log, state.budget.total
    allocation, progress = state.allocation, state.progress
    params_after = count_parameters(job.model)
    if params_after > budget:
        over = params_after - budget
        message = (
            f"compressed model keeps {params_after:,} parameters, over the budget of {budget:,} "
            f"by {over:,} ({100.0 * over / budget:.1f} %)"
        )
        if not plan.may_miss_budget:
            raise BudgetError(message)
        log.notes.append(message)
    return CompressionResult(
        model=job.model,
        recipe=job.recipe,
        options=dict(job.options),
        ratio=job.ratio,
        ranks=dict(allocation.ranks) if allocation else {},
        params_before=state.budget.params_before,
        params_after=params_after,
        budget=budget,
        records=progress.records if progress else {},
        timings=log.timings,
        passes=log.passes,
        lam=state.objective.global_lam if state.objective else None,
        layer_order=list(state.probe.order) if state.probe else [],
        objective=plan.describe(),
        stages=[list(stage.layers) for stage in progress.stages] if progress else [],
        statistics=state.statistics.clean if state.statistics else None,
        notes=log.notes,
        reports=log.reports,
        spectra={name: values.detach().double().cpu() for name, values in allocation.spectra.items()}
        if allocation
        else {},
    )


def clean_statistics(job: CompressionJob, plan: Plan) -> CalibrationStatistics:
    """The clean statistics of ``plan`` (λ balanced as :func:`run_plan` does), or ``job.saved_statistics``.

    For recipes that need them before allocation (a sensitivity search, a training loop): give the
    result back as ``job.saved_statistics`` and :func:`run_plan` takes neither the λ nor the clean pass again.
    """
    if job.saved_statistics is not None:
        return job.saved_statistics
    state = start_state(job, plan)
    run_phases(state, (LambdaPhase(), CleanStatisticsPhase()))
    return state.statistics.clean
