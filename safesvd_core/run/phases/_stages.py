"""The stages phase: layers solved in forward order, one stage (a block, or one layer) at a time,
each with the shifted statistics of the model compressed so far; stage hooks run after each."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import ClassVar

import attrs
from torch import Tensor
from tqdm.auto import tqdm

from ..._defaults import DEFAULTS
from ..._errors import ConfigError
from ...kinds._interfaces import Factorization, SolveRecord
from ...kinds._plugins import registry
from ...kinds._validators import auto_or, one_of, positive, unit_interval
from ...model._lowrank import LowRankLinear
from ...model._modules import set_submodule
from ...statistics._solve import DECOMPOSITIONS
from .._job import STAGE_MODES, Phase, RunState, provided_statistics
from .._outputs import Progress, Stage
from .._plan_draft import PlanDraft
from .._seams import Shared
from ._original_inputs import owning_block
from ._stage_inputs import StageInputs


@attrs.frozen(kw_only=True)
class StagesPhase(Phase):
    """Writes ``state.progress``: plans the stages, then solves each stage's layers at their ranks
    and replaces them in ``job.model``, counting ``progress.stage_index`` up, each solved layer's
    record and factors kept. A progress already there (a checkpoint's, on resume) is continued: its
    factors are put back into the model and the stages before its ``stage_index`` are taken as done.

    ``stage_mode="auto"`` gives the exact mode's result at the lowest cost: ``"layer"`` stages when
    every block runs once per calibration item (then cached block inputs are exact), ``"exact"``
    ones when blocks run several times (a rollout: a block's later calls depend on its own
    compression through the earlier steps, which cached inputs would miss).

    Options (in a list of phases; they set the plan's solver, shifted estimators and stage mode):
    ``alpha`` (the clean/shifted balance; ``"auto"`` with a tuning phase), ``sequential`` (shifted
    statistics on/off), ``stage_mode``, ``jitter`` and ``fisher_jitter`` (relative), ``decomposition``
    (``"gram"``: one eigendecomposition per layer, checked, falling back to ``"svd"``). The solver
    weighs by the output Fisher when the clean statistics estimate one.
    """

    name: ClassVar[str] = "stages"
    reads: ClassVar[tuple[str, ...]] = ("probe", "statistics", "allocation")
    writes: ClassVar[tuple[str, ...]] = ("progress",)

    alpha: float | str = attrs.field(default=DEFAULTS.alpha, validator=auto_or(unit_interval))
    sequential: bool = True
    stage_mode: str = attrs.field(default=DEFAULTS.stage_mode, validator=one_of(STAGE_MODES))
    jitter: float = attrs.field(default=DEFAULTS.jitter, validator=positive)
    fisher_jitter: float = attrs.field(default=DEFAULTS.jitter, validator=positive)
    decomposition: str = attrs.field(default=DEFAULTS.decomposition, validator=one_of(DECOMPOSITIONS))

    def configure(self, draft: PlanDraft) -> None:
        alpha = draft.auto(self, "alpha", self.alpha, DEFAULTS.alpha)
        clean = draft.parts.get("clean_estimators", ())
        sensitivity = "fisher" in provided_statistics(clean, (), draft.parts.get("estimator_options", {}))
        solver = registry("solver").create(
            "whitened",
            alpha=alpha if self.sequential else 0.0,
            sensitivity=sensitivity,
            jitter=self.jitter,
            fisher_jitter=self.fisher_jitter,
            decomposition=self.decomposition,
        )
        draft.set(
            self,
            solver=solver,
            shifted_estimators=("shifted-covariance",) if self.sequential and alpha > 0 else (),
            stage_mode=self.stage_mode,
        )

    def check(self, state: RunState) -> None:
        if state.plan.stage_mode in ("block", "layer") and not self._blocks(state):
            raise ConfigError(f"stage_mode={state.plan.stage_mode!r} needs an adapter that names its blocks")

    @staticmethod
    def _blocks(state: RunState) -> list[str] | None:
        return state.job.adapter.blocks(state.job.model) if state.plan.sequential else None

    def run(self, state: RunState) -> None:
        job, plan, probe, statistics = state.job, state.plan, state.probe, state.statistics.clean
        mode = (
            plan.stage_mode if plan.stage_mode != "auto" else ("layer" if probe.chained_blocks else "exact")
        )
        progress = state.progress if state.progress is not None else Progress()
        progress.stages = plan_stages(
            probe.order, self._blocks(state), mode, probe.input_groups, probe.block_readers
        )
        done = {name for stage in progress.stages[: progress.stage_index] for name in stage.layers}
        if not set(progress.factors) <= done:
            raise ConfigError(
                f"the resumed progress holds factors of layers its first {progress.stage_index} stages "
                "do not cover: it was planned with other stages (another safesvd version?); resume "
                "with the version that wrote it, or start with a new checkpoint directory"
            )
        state.progress = progress
        _restore(state)
        inputs = StageInputs(state) if plan.sequential else None
        for stage in tqdm(
            progress.stages[progress.stage_index :], desc="stages", disable=not job.show_progress
        ):
            solved = [name for name in stage.layers if state.allocation.ranks[name] is not None]
            if inputs is not None and solved:  # a stage whose layers all stay dense takes no pass
                state.count("stages")
            if inputs is not None and stage.block is not None and mode == "layer":
                # one block run per layer (siblings, reading one input, share it), the earlier
                # layers already compressed
                for group in sibling_groups(solved, probe.input_groups):
                    state.count("layer runs")
                    _solve(state, group, statistics, inputs.collect(stage, group))
            else:
                shifted = inputs.collect(stage, tuple(solved)) if inputs is not None and solved else {}
                _solve(state, solved, statistics, shifted)
            if inputs is not None:
                inputs.advance(stage)
            progress.stage_index += 1
            for hook in job.hooks:
                hook.stage_done(state, stage)
        _note_few_rows(state)


def _note_few_rows(state: RunState) -> None:
    """A note per solved layer whose clean statistics saw fewer rows than it has inputs."""
    for name, rows in state.statistics.rows.items():
        record, view = state.progress.records.get(name), state.maps[name]
        if record is not None and rows < view.in_features:
            state.log.notes.append(
                f"layer {name!r}: {rows} calibration rows for {view.in_features} inputs, so its "
                f"input covariance has rank ≤ {rows}; the solve leans on the relative jitter (input "
                f"path {record.paths.get('input')}, ε = {record.jitters.get('input', 0.0):.2e}): "
                "more calibration data would help"
            )


def _solve(state: RunState, names: Sequence[str], statistics, shifted) -> None:
    """Solve ``names`` at their ranks on their clean plus ``shifted`` statistics (split across the
    job's processes: each layer by its owner) and replace them in ``job.model``."""
    order, ranks, progress = state.probe.order, state.allocation.ranks, state.progress
    spectra = state.allocation.spectra or {}

    def solve(position: int) -> Shared:
        name = order[position]
        layer_statistics = statistics.layer(name)
        layer_statistics.update(shifted.get(name, {}))
        start = time.perf_counter()
        note = ""
        if ranks[name] == 0:  # a dropped Fourier mode: nothing to solve
            factors = dropped(state.maps[name].weight)
        else:
            solver, note = state.plan.solver.for_layer(ranks[name], spectra.get(name))
            factors = solver.solve(state.maps[name].weight, ranks[name], layer_statistics)
        record = attrs.evolve(
            factors.record,
            seconds=time.perf_counter() - start,
            note="; ".join(text for text in (note, factors.record.note) if text),
        )
        if note:  # the fallback taken before the route it replaces: recorded as one
            record = attrs.evolve(record, paths={**record.paths, "decomposition": "svd-fallback"})
        return Shared(tensors={"first": factors.first, "second": factors.second}, meta=record.to_dict())

    for position, shared in state.job.reducer.share([order.index(name) for name in names], solve).items():
        name, view = order[position], state.maps[order[position]]
        progress.records[name] = SolveRecord(**shared.meta)
        first, second = (shared.tensors[key].to(view.weight.device) for key in ("first", "second"))
        _replace(state, name, view.low_rank(first, second))


def dropped(weight: Tensor) -> Factorization:
    """The rank-0 factors of ``weight`` (``m × n``): empty, the layer keeps its bias alone."""
    out_features, in_features = weight.shape
    record = SolveRecord(paths={"decomposition": "dropped"}, jitters={}, note="")
    return Factorization(
        first=weight.new_zeros(0, in_features), second=weight.new_zeros(out_features, 0), record=record
    )


def _replace(state: RunState, name: str, module: LowRankLinear) -> None:
    """``module`` in place of layer ``name`` in ``job.model``, its factors kept in the progress."""
    set_submodule(state.job.model, name, module)
    state.progress.factors[name] = (module.first.weight.detach(), module.second.weight.detach())


def _restore(state: RunState) -> None:
    """Put the factors a resumed progress holds (a checkpoint's, already balanced) into ``job.model``."""
    for name, (first, second) in list(state.progress.factors.items()):
        view = state.maps[name]
        _replace(
            state,
            name,
            view.low_rank(first.to(view.weight.device), second.to(view.weight.device), balance=False),
        )


def plan_stages(
    order: Sequence[str],
    blocks: Sequence[str] | None,
    mode: str,
    input_groups: Mapping[str, str] | None = None,
    block_readers: Mapping[str, str] | None = None,
) -> list[Stage]:
    """Layers in forward order, grouped into one stage per block (``mode`` "auto", "block" or
    "layer" with blocks), or one stage per layer; with ``input_groups`` (layer → the first layer
    reading the same input), consecutive layers outside block stages that read one input share a
    stage (siblings: e.g. query, key and value). With ``block_readers`` (layer outside the blocks →
    the block whose input it reads), such a layer right before or after that block's layers joins
    the block's stage: its inputs are the block's (an FNO's skip convolution and its Fourier layer)."""
    use_blocks = bool(blocks) and mode != "exact"
    stages: list[Stage] = []
    for position, name in enumerate(order):
        block = owning_block(name, blocks) if use_blocks else None
        if block is None and use_blocks and block_readers and name in block_readers:
            following = order[position + 1] if position + 1 < len(order) else None
            reader_of = block_readers[name]
            before = following is not None and owning_block(following, blocks) == reader_of
            if before or (stages and stages[-1].block == reader_of):  # right before or after it
                block = reader_of
        if block is not None and stages and stages[-1].block == block:
            stages[-1] = Stage((*stages[-1].layers, name), block)
            continue
        if block is not None and any(stage.block == block for stage in stages):
            raise ConfigError(
                f"the layers of block {block!r} do not run contiguously; use stage_mode='exact'"
            )
        if (
            block is None
            and input_groups
            and stages
            and stages[-1].block is None
            and same_input(stages[-1].layers[-1], name, input_groups)
        ):
            stages[-1] = Stage((*stages[-1].layers, name), None)
            continue
        stages.append(Stage((name,), block))
    return stages


def sibling_groups(names: Sequence[str], input_groups: Mapping[str, str]) -> list[tuple[str, ...]]:
    """``names`` in order, consecutive ones that read one input (``input_groups``) grouped."""
    groups: list[tuple[str, ...]] = []
    for name in names:
        if groups and same_input(groups[-1][-1], name, input_groups):
            groups[-1] = (*groups[-1], name)
        else:
            groups.append((name,))
    return groups


def same_input(first: str, second: str, input_groups: Mapping[str, str]) -> bool:
    """Whether layers ``first`` and ``second`` read one input (a layer missing from ``input_groups``
    reads its own)."""
    return input_groups.get(first, first) == input_groups.get(second, second)
