"""The clean-statistics phase: the plan's clean estimators over the original model, in one pass
per group of layers (one group, unless a memory cap spills them to disk)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import attrs
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..._defaults import DEFAULTS
from ..._errors import ConfigError, SafeSVDError
from ...kinds._interfaces import LayerSignals
from ...kinds._validators import one_of, steps_value
from ...model._capture import LayerRecorder
from ...model._gradient_taps import GradientTaps
from ...model._layers import linear_map
from ...model._recompute import recomputed_blocks
from ...physics._objective import FISHER_MODES, LAM_RECORD, CalibrationObjective
from ...statistics._spill import layer_groups
from ...statistics._statistics import CalibrationStatistics, EstimatorFactory
from .._job import Phase, RunState
from .._memory import check_fits, estimate
from .._outputs import CleanStatistics
from .._plan_draft import PlanDraft
from .._rollout import RolloutSource, trajectory_length


@attrs.frozen(kw_only=True)
class CleanStatisticsPhase(Phase):
    """Writes ``state.statistics``: ``job.saved_statistics`` when given (resume), else the clean pass.

    Each group's statistics go through the job's reducer, then (with a memory cap) to the spill
    directory, which is reopened once every group is there. The statistics record the λ of the
    objective they were gathered with (``LAM_RECORD``), so that a resume from them keeps it.

    Options (in a list of phases; they set the plan's clean estimators and batch source):
    ``sensitivity`` (estimate the output Fisher ``S``), ``fisher`` (``"sampled"``: at residuals drawn
    at the observed scale, the model Fisher; ``"empirical"``: at the model's residuals, the paper's),
    ``seed`` (of those draws). Given trajectories: ``rollout`` (calibrate on rollouts, else on their
    teacher-forced one-step batches), ``rollout_steps`` (``None``: every step they hold; a number up
    to that; ``"auto"`` with a tuning phase), ``balance_horizons`` (energy-balance the one-step and
    the rollout statistics); ``balance_domains`` (energy-balance the domains: ``safe-svd-balanced``);
    ``recompute_blocks`` (the gradient pass keeps each block's arguments, not its intermediate
    tensors, and runs the block again in the backward pass: one more forward pass over the blocks
    for a graph of about their arguments; ``None``: when the statistics are capped in memory, a
    ``SpillPolicy``).
    """

    name: ClassVar[str] = "clean"
    reads: ClassVar[tuple[str, ...]] = ("objective",)
    writes: ClassVar[tuple[str, ...]] = ("statistics",)

    sensitivity: bool = True
    fisher: str = attrs.field(default=DEFAULTS.phase_fisher, validator=one_of(FISHER_MODES))
    seed: int = 0
    rollout: bool = True
    rollout_steps: int | str | None = attrs.field(default=None, validator=steps_value)
    balance_horizons: bool = True
    balance_domains: bool = False
    recompute_blocks: bool | None = None

    def configure(self, draft: PlanDraft) -> None:
        steps = draft.auto(self, "rollout_steps", self.rollout_steps, None)
        if draft.job is not None:
            steps = self.steps(draft.job.adapter, draft.job.batches, steps)
        clean: tuple[str, ...] = ("clean-covariance",) + (("output-fisher",) if self.sensitivity else ())
        groups = self.balance_horizons and steps is not None and steps > 1
        by = (("domain",) if self.balance_domains else ()) + (("group",) if groups else ())
        options: dict[str, dict[str, Any]] = {}
        if by:
            options["energy-balanced"] = {"inner": clean, "by": by}
            clean = ("energy-balanced",)
        source = {} if steps is None else {"source": RolloutSource(steps=steps, one_step_group=groups)}
        draft.set(
            self,
            clean_estimators=clean,
            estimator_options=options,
            fisher=self.fisher,
            seed=self.seed,
            **source,
        )

    def steps(self, adapter: Any, items: Sequence[Any], steps: int | None) -> int | None:
        """The rollout length for ``items``: ``None`` for one-step batches (or ``rollout`` off), else
        ``steps`` (checked against what the trajectories hold) or every step they hold."""
        available = trajectory_length(adapter, items)
        if available is None or not self.rollout:
            return None
        if steps is None:
            return available
        if steps > available:
            raise ConfigError(f"rollout_steps={steps}, but the trajectories hold {available} steps")
        return steps

    def check(self, state: RunState) -> None:
        # the grouping and the memory can fail: find out before any pass over the data, from this
        # process's own domains (no collective here: the run groups with every process's)
        job = state.job
        gathers = job.saved_statistics is None and bool(state.plan.clean_estimators)
        sizes = _footprints(state, len(_domains(state))) if gathers else {}
        if gathers and job.spill is not None:
            layer_groups(sizes, state.layers, job.spill.max_bytes)
        model_bytes = sum(p.numel() * p.element_size() for p in job.original.parameters())
        need = estimate(
            model_bytes=model_bytes,
            copies=1 + int(job.adapter.rewrites_modules),
            statistics=min(sum(sizes.values()), job.spill.max_bytes) if job.spill else sum(sizes.values()),
            largest=max(state.shapes.values(), key=lambda shape: shape[0] * shape[1]),
        )
        check_fits(need)  # logged ("safesvd" logger, INFO) before any pass; refused when it cannot fit

    def run(self, state: RunState) -> None:
        job, plan = state.job, state.plan
        make = EstimatorFactory(plan.estimator_options)
        if job.saved_statistics is not None:
            state.statistics = CleanStatistics(clean=job.saved_statistics)
            return
        if not plan.clean_estimators:
            state.statistics = CleanStatistics(clean=CalibrationStatistics.create(state.shapes, (), make))
            return
        objective = state.objective
        shapes = state.shapes
        groups = [state.layers]
        if job.spill is not None:  # every process's domains, so that every process groups alike
            sizes = _footprints(state, len(job.reducer.union(_domains(state))))
            siblings = state.probe.input_groups if state.probe is not None else {}
            groups = layer_groups(sizes, state.layers, job.spill.max_bytes, siblings)
        rows: dict[str, int] = {}
        for group in groups:
            statistics = CalibrationStatistics.create(
                {name: shapes[name] for name in group}, plan.clean_estimators, make
            )
            statistics.metadata[LAM_RECORD] = objective.global_lam
            needs_gradients = any(
                "output_grads" in estimator.requires  # instances: a wrapper's needs are its inner ones
                for by_name in statistics.estimators.values()
                for estimator in by_name.values()
            )
            rows.update(
                clean_pass(state, statistics, group, objective, needs_gradients, self._recomputed(state))
            )
            job.reducer.reduce(statistics)
            if job.spill is not None:
                with state.timed("spill"):
                    statistics.spill(job.spill.directory)
        state.count(self.name, len(groups))
        state.statistics = CleanStatistics(
            clean=statistics if job.spill is None else CalibrationStatistics.open(job.spill.directory),
            groups=tuple(tuple(group) for group in groups),
            rows=rows,
        )

    def _recomputed(self, state: RunState) -> tuple[str, ...]:
        """The blocks the gradient pass runs again in its backward pass (``recompute_blocks``)."""
        wanted = state.job.spill is not None if self.recompute_blocks is None else self.recompute_blocks
        return tuple(state.probe.block_order) if wanted and state.probe is not None else ()


def _domains(state: RunState) -> list[str]:
    """This process's domain labels of the calibration items."""
    job = state.job
    return sorted(
        {str(job.adapter.domain(state.source.first_batch(job.adapter, item))) for item in job.batches}
    )


def _footprints(state: RunState, domains: int) -> dict[str, int]:
    """Layer → bytes its clean estimators will hold for ``domains`` domains (one estimator built per
    distinct shape, not per layer)."""
    make = EstimatorFactory(state.plan.estimator_options)
    by_shape = {
        (n, m): sum(
            make(estimator, n, m).footprint(max(1, domains)) for estimator in state.plan.clean_estimators
        )
        for n, m in set(state.shapes.values())
    }
    return {name: by_shape[shape] for name, shape in state.shapes.items()}


@contextlib.contextmanager
def _weights_require_grad(model: nn.Module, names: Sequence[str]) -> Iterator[None]:
    layers = [linear_map(model, name).module for name in names]
    flags = [layer.weight.requires_grad for layer in layers]
    for layer in layers:
        layer.weight.requires_grad_(True)
    try:
        yield
    finally:
        for layer, flag in zip(layers, flags):
            layer.weight.requires_grad_(flag)


def clean_pass(
    state: RunState,
    statistics: CalibrationStatistics,
    names: Sequence[str],
    objective: CalibrationObjective,
    needs_gradients: bool,
    recomputed: Sequence[str] = (),
) -> dict[str, int]:
    """Feed ``statistics`` the inputs (and, with ``needs_gradients``, the output gradients of the
    calibration loss) of ``names`` in the original model, over every calibration item: per
    statistics group of the batch source, the layer calls made by that group's model calls.
    Returns the rows each layer saw in its widest group (the rank its covariance can reach).

    The gradients are taken one at a time while the backward pass runs (:mod:`...model._gradient_taps`):
    neither the layers' outputs nor all their gradients are held at once. With gradients, the blocks
    ``recomputed`` run again in the backward pass instead of holding their intermediate tensors
    (:mod:`...model._recompute`)."""
    job, source = state.job, state.source
    model, adapter = job.original, job.adapter
    views = {name: linear_map(model, name) for name in names}
    recorder = LayerRecorder(model, names)
    taps = GradientTaps(model, names)
    grad_context = _weights_require_grad(model, names) if needs_gradients else contextlib.nullcontext()
    tapped = taps.attached() if needs_gradients else contextlib.nullcontext()
    again = recomputed_blocks(model, recomputed) if needs_gradients else contextlib.nullcontext()
    rows: dict[str | None, dict[str, int]] = {}
    with grad_context, recorder.attached(), tapped, again:
        for index, item in enumerate(
            tqdm(job.batches, desc="clean statistics", disable=not job.show_progress)
        ):
            recorder.clear()
            taps.clear()
            with torch.set_grad_enabled(needs_gradients):
                calls, ends = [], []  # ends[c][name]: the layer calls made up to the end of model call c
                for call in source.predictions(adapter, model, item):
                    calls.append(call)
                    ends.append({name: len(recorder.inputs[name]) for name in names})
                groups = source.groups(len(calls))
                item_objective = objective.for_item(job.reducer.global_index(index))
                domain = adapter.domain(source.first_batch(adapter, item))
                for position, (group, chosen) in enumerate(groups.items()):
                    spans = {
                        name: [i for c in chosen for i in range(ends[c - 1][name] if c else 0, ends[c][name])]
                        for name in names
                    }
                    feed = _Feed(statistics, views, recorder, spans, domain, group)
                    if needs_gradients:
                        loss = source.loss(item_objective, calls, group)
                        with statistics.sharing(feed.input_rows()), _explained(recomputed):
                            taps.backward(loss, feed.gradient, retain_graph=position + 1 < len(groups))
                            feed.unreached(taps)
                    else:
                        statistics.update_all(feed.without_gradients())
                    for name in names:
                        counted = rows.setdefault(group, {}).setdefault(name, 0)
                        rows[group][name] = counted + sum(
                            views[name].row_count(recorder.inputs[name][i]) for i in spans[name]
                        )
    return {name: max(by_layer.get(name, 0) for by_layer in rows.values()) for name in names}


@contextlib.contextmanager
def _explained(recomputed: Sequence[str]) -> Iterator[None]:
    """Autograd's refusal of a changed block argument, said in the phase's terms."""
    try:
        yield
    except RuntimeError as error:
        if not recomputed or "modified by an inplace operation" not in str(error):
            raise
        raise SafeSVDError(
            "the backward pass cannot run a block again: the model changes a tensor the block read "
            "in place, after the block ran (recomputing the blocks needs their arguments as they "
            "were); compress with recompute_blocks=False"
        ) from error


class _Feed:
    """One statistics group's rows of every layer (``spans``: the layer calls it covers)."""

    def __init__(self, statistics, views, recorder: LayerRecorder, spans, domain, group) -> None:
        self.statistics, self.views, self.recorder = statistics, views, recorder
        self.spans = {name: set(calls) for name, calls in spans.items()}
        self.domain, self.group = domain, group
        self.fed: set[tuple[str, int]] = set()

    def _signals(self, name: str, call: int, grad: Tensor | None) -> LayerSignals:
        view = self.views[name]
        return LayerSignals(
            inputs=view.rows(self.recorder.inputs[name][call]),
            domain=self.domain,
            group=self.group,
            output_grads=None if grad is None else view.rows(grad.detach()),
        )

    def input_rows(self) -> list[Tensor]:
        """The input rows of every call the group covers (what siblings may share)."""
        return [
            self.views[name].rows(self.recorder.inputs[name][call])
            for name, calls in self.spans.items()
            for call in sorted(calls)
        ]

    def without_gradients(self) -> list[tuple[str, LayerSignals]]:
        return [
            (name, self._signals(name, call, None))
            for name, calls in self.spans.items()
            for call in sorted(calls)
        ]

    def gradient(self, name: str, call: int, grad: Tensor) -> None:
        """A tapped output's gradient: fed with the call's input when the group covers the call."""
        if call in self.spans[name]:
            self.statistics.update(name, self._signals(name, call, grad))
            self.fed.add((name, call))

    def unreached(self, taps: GradientTaps) -> None:
        """The calls the group covers whose output the loss does not depend on: a zero gradient."""
        for name, calls in self.spans.items():
            for call in sorted(calls):
                if (name, call) not in self.fed:
                    self.statistics.update(name, self._signals(name, call, taps.zeros(name, call)))
