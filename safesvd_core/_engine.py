"""The compression engine shared by the recipes: statistics, allocation, sequential solve.

Phases (METHOD.md, "Sequential compression"):

1. probe: one forward pass on the first batch records the forward order of the layers, how
   often each is called, and the inputs of the adapter's blocks (to check the chain);
2. λ (only with physics terms and ``lam="auto"``): one no-grad pass;
3. clean pass: clean-phase estimators (covariance, Fisher) over the calibration set;
4. allocation: proxy spectra from clean statistics, ranks from the allocator under the budget;
5. stages in forward order. A *block* stage collects the shifted statistics of all its layers
   in one pass over the block alone, from cached block inputs (the earlier layers of the same
   block are not yet compressed when they are taken: the documented approximation). The cache
   is carried from a block to the next when the next one reads its output (checked on the first
   batch); otherwise a *prefix* pass runs both models up to the next block. An *exact*
   stage is one layer, its inputs taken by a forward pass of the partially compressed model
   that stops right after the layer.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import attrs
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._capture import BlockRecorder, LayerRecorder, run_until_stopped
from ._errors import BudgetError, ConfigError, SafeSVDError
from ._family import PDEFamily
from ._interfaces import Allocator, Estimator, LayerCandidate, LayerSignals, ModelAdapter, PhysicsLoss, Solver
from ._layers import linear_map
from ._modules import count_parameters, set_submodule
from ._objective import CalibrationObjective, auto_lambda
from ._result import CompressionResult
from ._spill import SpillPolicy, layer_groups
from ._statistics import CalibrationStatistics, EstimatorFactory

StageMode = Literal["auto", "block", "exact"]


@attrs.define(kw_only=True)
class CompressionJob:
    """Everything a recipe needs: the untouched original, the model to compress, the data."""

    original: nn.Module
    model: nn.Module
    batches: Sequence[Any]
    adapter: ModelAdapter
    ratio: float
    recipe: str
    options: dict[str, Any]
    statistics: CalibrationStatistics | None = None
    progress: bool = False
    spill: SpillPolicy | None = None


@attrs.frozen(kw_only=True)
class Plan:
    """A recipe's composition: which estimators run when, which solver and allocator."""

    clean_estimators: tuple[str, ...]
    shifted_estimators: tuple[str, ...] = ()
    solver: Solver
    allocator: Allocator
    physics: tuple[PhysicsLoss, ...] = ()
    lam: float | str = "auto"
    lam_ratio: float = 10.0
    lam_mode: str = "global"
    lam_cap: float = 1000.0
    family: PDEFamily | None = None
    stage_mode: StageMode = "auto"
    estimator_options: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    #: A recipe that cannot meet the budget by construction (e.g. SVD-LLM V2) sets this: the
    #: result then reports the miss in ``notes`` instead of raising :class:`BudgetError`.
    may_miss_budget: bool = False

    @property
    def sequential(self) -> bool:
        return bool(self.shifted_estimators)


@attrs.frozen
class Stage:
    """Layers solved together; ``block`` is the block they run in, or None for an exact stage."""

    layers: tuple[str, ...]
    block: str | None


@attrs.frozen
class Probe:
    order: tuple[str, ...]
    calls: Mapping[str, int]
    block_order: tuple[str, ...]
    block_inputs: Mapping[str, Tensor]


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start


def run_plan(job: CompressionJob, plan: Plan) -> CompressionResult:
    """Compress ``job.model`` in place following ``plan``; the original stays untouched."""
    timer = _Timer()
    start = time.perf_counter()
    adapter = job.adapter
    names = _validated_layers(job)
    maps = {name: linear_map(job.model, name) for name in names}
    shapes = {name: (view.in_features, view.out_features) for name, view in maps.items()}
    params_before, budget, weights_budget = _budgets(job, shapes)
    if weights_budget < 0:  # known from parameter counts alone: refuse before any pass over the data
        raise BudgetError(
            f"ratio {job.ratio} gives a budget of {budget:,} parameters, fewer than the "
            f"{budget - weights_budget:,} outside the compressible layers, which are always kept: "
            f"no ratio below {(budget - weights_budget) / params_before:.4f} can be met on this model"
        )
    passes: dict[str, int] = {}

    with _evaluating(job.original), _evaluating(job.model):
        with timer("probe"):
            probe = _probe(job, names)
        order = list(probe.order)
        if plan.family is not None:
            field = adapter.field(job.batches[0])
            if field is None:
                raise ConfigError(f"family {plan.family.name!r} needs a field description from the adapter; none was given")
            plan.family.check(field)
        statistics, lam, make = _gather_clean(job, plan, names, shapes, timer, passes)

        with timer("allocate"):  # one layer's statistics at a time: they may be spilled to disk
            candidates = [
                LayerCandidate(name=name, out_features=shapes[name][1], in_features=shapes[name][0],
                               spectrum=plan.solver.spectrum(maps[name].weight, statistics.layer(name)), order=index)
                for index, name in enumerate(order)
            ]
            ranks = plan.allocator.allocate(candidates, weights_budget)

        stages = _stages(order, probe, adapter.blocks(job.model) if plan.sequential else None, plan.stage_mode, ranks)
        records = {}
        with timer("stages"):
            solver_stats = _StageRunner(job, probe, plan, make, passes)
            iterator = tqdm(stages, desc="stages", disable=not job.progress)
            for stage in iterator:
                shifted = solver_stats.collect(stage) if plan.sequential else {}
                for name in stage.layers:
                    rank = ranks[name]
                    if rank is None:
                        continue
                    layer = maps[name]
                    stats = statistics.layer(name)
                    stats.update(shifted.get(name, {}))
                    factors = plan.solver.solve(layer.weight, rank, stats)
                    records[name] = factors.record
                    set_submodule(job.model, name, layer.low_rank(factors.first, factors.second))
                solver_stats.advance(stage)

    params_after = count_parameters(job.model)
    timer.seconds["total"] = time.perf_counter() - start
    notes: list[str] = []
    if params_after > budget:
        message = (f"compressed model keeps {params_after:,} parameters, over the budget of {budget:,} "
                   f"by {params_after - budget:,} ({100.0 * (params_after - budget) / budget:.1f} %)")
        if not plan.may_miss_budget:
            raise BudgetError(message)
        notes.append(message)
    return CompressionResult(
        model=job.model, recipe=job.recipe, options=dict(job.options), ratio=job.ratio, ranks=dict(ranks),
        params_before=params_before, params_after=params_after, budget=budget, records=records,
        timings=timer.seconds, passes=passes, lam=lam, layer_order=order,
        objective={"physics": [repr(loss) for loss in plan.physics], "lam_mode": plan.lam_mode,
                   "family": plan.family.name if plan.family else None},
        stages=[list(stage.layers) for stage in stages], statistics=statistics, notes=notes,
    )


def _shapes(model: nn.Module, names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Layer name → ``(in, out)``."""
    return {name: (view.in_features, view.out_features) for name, view in ((n, linear_map(model, n)) for n in names)}


def _budgets(job: CompressionJob, shapes: Mapping[str, tuple[int, int]]) -> tuple[int, int, int]:
    """``(N_total, ⌊ratio · N_total⌋, factor budget)``: every parameter outside the compressible
    weights is kept, so the factor budget is what the budget leaves for them."""
    params_before = count_parameters(job.original)
    budget = int(job.ratio * params_before)
    return params_before, budget, budget - (params_before - sum(n * m for n, m in shapes.values()))


def factor_budget(job: CompressionJob) -> int:
    """The weights :func:`run_plan` lets the compressible layers keep (for recipes that allocate themselves)."""
    return _budgets(job, _shapes(job.model, _validated_layers(job)))[2]


def clean_statistics(job: CompressionJob, plan: Plan) -> CalibrationStatistics:
    """The clean statistics of ``plan`` (λ balanced as :func:`run_plan` does), or ``job.statistics``.

    For recipes that need them before allocation (a sensitivity search, a training loop): give the
    result back as ``job.statistics`` and :func:`run_plan` takes neither the λ nor the clean pass again.
    """
    if job.statistics is not None:
        return job.statistics
    names = _validated_layers(job)
    with _evaluating(job.original), _evaluating(job.model):
        statistics, _, _ = _gather_clean(job, plan, names, _shapes(job.model, names), _Timer(), {})
    return statistics


def _gather_clean(
    job: CompressionJob, plan: Plan, names: Sequence[str], shapes: Mapping[str, tuple[int, int]], timer: _Timer,
    passes: dict[str, int],
) -> tuple[CalibrationStatistics, float | None, Callable[[str, int, int], Estimator]]:
    """λ (balanced, resumed or fixed), then the clean pass unless ``job.statistics`` is given."""
    adapter = job.adapter
    make = EstimatorFactory(plan.estimator_options)
    statistics = job.statistics
    gather = statistics is None and bool(plan.clean_estimators)
    # the grouping can fail (a layer over the cap): find out before any pass over the data
    groups = [list(names)] if not gather or job.spill is None else _spill_groups(job, plan, names, shapes, make)
    lam: float | None = None
    if plan.physics and plan.lam_mode == "global":
        if plan.lam == "auto" and job.statistics is not None and job.statistics.metadata.get("lam") is not None:
            lam = float(job.statistics.metadata["lam"])  # resumed: λ was balanced with these statistics
        elif plan.lam == "auto":
            with timer("lambda"):
                lam = auto_lambda(job.original, job.batches, adapter, plan.physics, ratio=plan.lam_ratio)
            passes["lambda"] = 1
        else:
            lam = float(plan.lam)
    objective = CalibrationObjective(adapter=adapter, physics=plan.physics, lam=lam or 0.0, mode=plan.lam_mode,
                                     lam_ratio=plan.lam_ratio, lam_cap=plan.lam_cap)

    if statistics is None and not plan.clean_estimators:
        statistics = CalibrationStatistics.create(shapes, (), make)
    elif gather:
        for group in groups:
            statistics = CalibrationStatistics.create({name: shapes[name] for name in group}, plan.clean_estimators, make)
            statistics.metadata["lam"] = lam
            needs_gradients = any("output_grad" in estimator.requires  # instances: a wrapper's needs are its inner ones
                                  for by_name in statistics.estimators.values() for estimator in by_name.values())
            with timer("clean"):
                _clean_pass(job, statistics, group, objective, needs_gradients)
            if job.spill is not None:
                with timer("spill"):
                    statistics.spill(job.spill.directory)
        passes["clean"] = len(groups)
        if job.spill is not None:
            statistics = CalibrationStatistics.open(job.spill.directory)
    return statistics, lam, make


def _spill_groups(job: CompressionJob, plan: Plan, names: Sequence[str], shapes: Mapping[str, tuple[int, int]],
                  make: EstimatorFactory) -> list[list[str]]:
    """The layers of each clean pass under ``job.spill``'s memory cap (sizes from the estimators' footprints)."""
    domains = max(1, len({job.adapter.domain(batch) for batch in job.batches}))
    sizes = {}
    for name in names:
        n, m = shapes[name]
        sizes[name] = sum(make(estimator, n, m).footprint(domains) for estimator in plan.clean_estimators)
    return layer_groups(sizes, names, job.spill.max_bytes)


def _validated_layers(job: CompressionJob) -> list[str]:
    names = job.adapter.compressible_layers(job.model)
    if not names:
        raise ConfigError(f"adapter {job.adapter.name!r} found no compressible layer in the model")
    if len(set(names)) != len(names):
        raise ConfigError("the adapter listed a layer twice")
    for name in names:
        linear_map(job.model, name)
        linear_map(job.original, name)
    return list(names)


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.train(mode)


def _probe(job: CompressionJob, names: Sequence[str]) -> Probe:
    batch = job.batches[0]
    blocks = job.adapter.blocks(job.model) or []
    layers = LayerRecorder(job.original, names)
    block_recorder = BlockRecorder(job.original, blocks)
    with torch.no_grad(), layers.attached(), block_recorder.attached():
        job.adapter.predict(job.original, batch)
    missing = [name for name in names if not layers.inputs[name]]
    if missing:
        raise ConfigError(f"these compressible layers are never called by the model's forward pass: {missing}")
    for block, calls in block_recorder.calls.items():
        if len(calls) != 1:
            raise ConfigError(f"block {block!r} runs {len(calls)} times per forward pass; blocks must run exactly once")
    block_inputs = {name: calls[0][0][0] for name, calls in block_recorder.calls.items() if calls and calls[0][0]}
    return Probe(
        order=tuple(layers.order), calls={name: len(v) for name, v in layers.inputs.items()},
        block_order=tuple(block_recorder.order), block_inputs=block_inputs,
    )


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


def _clean_pass(job: CompressionJob, statistics: CalibrationStatistics, names: Sequence[str],
                objective: CalibrationObjective, needs_gradients: bool) -> None:
    model, adapter = job.original, job.adapter
    views = {name: linear_map(model, name) for name in names}
    recorder = LayerRecorder(model, names, keep_outputs=needs_gradients)
    grad_context = _weights_require_grad(model, names) if needs_gradients else contextlib.nullcontext()
    with grad_context, recorder.attached():
        for batch in tqdm(job.batches, desc="clean statistics", disable=not job.progress):
            recorder.clear()
            grads: list[Tensor | None] = []
            with torch.set_grad_enabled(needs_gradients):
                prediction = adapter.predict(model, batch)
                if needs_gradients:
                    loss = objective(prediction, batch)
                    outputs = [out for name in names for out in recorder.outputs[name]]
                    grads = list(torch.autograd.grad(loss, outputs, allow_unused=True))
            domain = adapter.domain(batch)
            position = 0
            for name in names:
                view = views[name]
                for index, layer_input in enumerate(recorder.inputs[name]):
                    grad = None
                    if needs_gradients:
                        grad = grads[position + index]
                        if grad is None:
                            grad = torch.zeros_like(recorder.outputs[name][index])
                    signals = LayerSignals(
                        inputs=view.rows(layer_input),
                        output_grads=None if grad is None else view.rows(grad.detach()),
                        domain=domain,
                    )
                    statistics.update(name, signals)
                position += len(recorder.inputs[name])


def _stages(order: Sequence[str], probe: Probe, blocks: Sequence[str] | None, mode: StageMode,
            ranks: Mapping[str, int | None]) -> list[Stage]:
    if mode not in ("auto", "block", "exact"):
        raise ConfigError(f"stage_mode must be 'auto', 'block' or 'exact', got {mode!r}")
    if mode == "block" and not blocks:
        raise ConfigError("stage_mode='block' needs an adapter that names its blocks")
    use_blocks = bool(blocks) and mode != "exact"
    stages: list[Stage] = []
    for name in order:
        block = _owning_block(name, blocks) if use_blocks else None
        if block is not None and stages and stages[-1].block == block:
            stages[-1] = Stage(stages[-1].layers + (name,), block)
            continue
        if block is not None and any(stage.block == block for stage in stages):
            raise ConfigError(f"the layers of block {block!r} do not run contiguously; use stage_mode='exact'")
        stages.append(Stage((name,), block))
    return stages


def _owning_block(layer: str, blocks: Sequence[str]) -> str | None:
    owners = [block for block in blocks if layer.startswith(block + ".")]
    return max(owners, key=len) if owners else None


class _StageRunner:
    """Collects shifted statistics stage by stage, caching block inputs along the chain."""

    def __init__(self, job: CompressionJob, probe: Probe, plan: Plan, make, passes: dict[str, int]) -> None:
        self.job = job
        self.probe = probe
        self.plan = plan
        self.make = make
        self.passes = passes
        self.cache_block: str | None = None  # block whose inputs are cached
        self.clean_inputs: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.shift_inputs: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.clean_outputs: list[Any] = []

    def _count(self, phase: str) -> None:
        self.passes[phase] = self.passes.get(phase, 0) + 1

    def collect(self, stage: Stage) -> dict[str, dict[str, Tensor]]:
        job = self.job
        views = {name: linear_map(job.model, name) for name in stage.layers}
        layers = {name: (view.in_features, view.out_features) for name, view in views.items()}
        stats = CalibrationStatistics.create(layers, self.plan.shifted_estimators, self.make)
        calls = {name: self.probe.calls[name] for name in stage.layers}
        self._count("stages")
        if stage.block is not None:
            self._ensure_block_inputs(stage.block)
        self.clean_outputs = []
        with torch.no_grad():
            for index, batch in enumerate(job.batches):
                clean_rec = LayerRecorder(job.original, stage.layers, stop_after=None if stage.block else calls)
                shift_rec = LayerRecorder(job.model, stage.layers, stop_after=None if stage.block else calls)
                if stage.block is None:
                    with clean_rec.attached():
                        run_until_stopped(job.adapter.predict, job.original, batch)
                    with shift_rec.attached():
                        run_until_stopped(job.adapter.predict, job.model, batch)
                else:
                    args, kwargs = self.clean_inputs[index]
                    with clean_rec.attached():
                        self.clean_outputs.append(job.original.get_submodule(stage.block)(*args, **kwargs))
                    args, kwargs = self.shift_inputs[index]
                    with shift_rec.attached():
                        job.model.get_submodule(stage.block)(*args, **kwargs)
                domain = job.adapter.domain(batch)
                for name in stage.layers:
                    clean_calls, shift_calls = clean_rec.inputs[name], shift_rec.inputs[name]
                    if len(clean_calls) != len(shift_calls):
                        raise SafeSVDError(f"layer {name!r} ran {len(clean_calls)} times in the original and "
                                           f"{len(shift_calls)} times in the compressed model")
                    for clean_in, shift_in in zip(clean_calls, shift_calls):
                        stats.update(name, LayerSignals(inputs=views[name].rows(clean_in),
                                                        shifted_inputs=views[name].rows(shift_in), domain=domain))
        return {name: stats.layer(name) for name in stage.layers}

    def _ensure_block_inputs(self, block: str) -> None:
        if self.cache_block == block:
            return
        job = self.job
        self.clean_inputs, self.shift_inputs = [], []
        with torch.no_grad():
            for batch in job.batches:
                for model, store in ((job.original, self.clean_inputs), (job.model, self.shift_inputs)):
                    recorder = BlockRecorder(model, [block], stop_at=block)
                    with recorder.attached():
                        run_until_stopped(job.adapter.predict, model, batch)
                    store.append(recorder.calls[block][0])
        self._count("prefix")
        self.cache_block = block

    def advance(self, stage: Stage) -> None:
        """After ``stage`` is solved: move the block-input caches to the next block of the chain."""
        if stage.block is None:
            self.cache_block = None
            return
        order = self.probe.block_order
        position = order.index(stage.block)
        if position + 1 >= len(order):
            self.cache_block = None
            return
        following = order[position + 1]
        adapter = self.job.adapter
        block = self.job.model.get_submodule(stage.block)
        new_shift = []
        with torch.no_grad():
            for args, kwargs in self.shift_inputs:
                new_shift.append(((adapter.next_block_input(block(*args, **kwargs)),) + tuple(args[1:]), kwargs))
        new_clean = [((adapter.next_block_input(out),) + tuple(args[1:]), kwargs)
                     for out, (args, kwargs) in zip(self.clean_outputs, self.clean_inputs)]
        expected = self.probe.block_inputs.get(following)
        got = new_clean[0][0][0] if new_clean else None
        if expected is None or got is None or expected.shape != got.shape or not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            # ``following`` is not fed by this block (a skip, a merge, a new level of a U-Net): its
            # inputs are taken afresh by a prefix pass when its stage starts (counted in ``passes``)
            self.cache_block = None
            return
        self.clean_inputs, self.shift_inputs = new_clean, new_shift
        self.cache_block = following
