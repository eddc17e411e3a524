"""The stages phase: layers solved in forward order, one stage (a block, or one layer) at a time,
each with the shifted statistics of the model compressed so far; stage hooks run after each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from tqdm.auto import tqdm

from ._errors import ConfigError
from ._job import Phase, RunState, Stage
from ._modules import set_submodule
from ._stage_inputs import StageInputs


class StagesPhase(Phase):
    """Sets ``state.stages``, then solves each stage's layers at their ranks and replaces them in
    ``job.model``, counting ``state.stage_index`` up. Stages before ``state.stage_index`` are taken as done.

    ``stage_mode="auto"`` gives the exact mode's result at the lowest cost: ``"layer"`` stages when
    every block runs once per calibration item (then cached block inputs are exact), ``"exact"``
    ones when blocks run several times (a rollout: a block's later calls depend on its own
    compression through the earlier steps, which cached inputs would miss)."""

    name: ClassVar[str] = "stages"

    def check(self, state: RunState) -> None:
        if state.plan.stage_mode in ("block", "layer") and not self._blocks(state):
            raise ConfigError(f"stage_mode={state.plan.stage_mode!r} needs an adapter that names its blocks")

    @staticmethod
    def _blocks(state: RunState) -> list[str] | None:
        return state.job.adapter.blocks(state.job.model) if state.plan.sequential else None

    def run(self, state: RunState) -> None:
        job, plan = state.job, state.plan
        probe = state.need("probe", self.name)
        statistics = state.need("statistics", self.name)
        mode = plan.stage_mode if plan.stage_mode != "auto" else ("layer" if probe.chained_blocks else "exact")
        state.stages = plan_stages(probe.order, self._blocks(state), mode)
        inputs = StageInputs(state) if plan.sequential else None
        for stage in tqdm(state.stages[state.stage_index:], desc="stages", disable=not job.progress):
            if inputs is not None:
                state.count("stages")
            if inputs is not None and stage.block is not None and mode == "layer":
                for name in stage.layers:  # one block run per layer, the earlier ones already compressed
                    if state.ranks[name] is not None:
                        state.count("layer runs")
                        _solve(state, name, statistics, inputs.collect(stage, (name,)))
            else:
                shifted = inputs.collect(stage) if inputs is not None else {}
                for name in stage.layers:
                    if state.ranks[name] is not None:
                        _solve(state, name, statistics, shifted)
            if inputs is not None:
                inputs.advance(stage)
            state.stage_index += 1
            for hook in job.stage_hooks:
                hook.stage_done(state, stage)


def _solve(state: RunState, name: str, statistics, shifted) -> None:
    """Solve ``name`` at its rank on its clean plus ``shifted`` statistics and replace it in ``job.model``."""
    view = state.maps[name]
    layer_statistics = statistics.layer(name)
    layer_statistics.update(shifted.get(name, {}))
    factors = state.plan.solver.solve(view.weight, state.ranks[name], layer_statistics)
    state.records[name] = factors.record
    set_submodule(state.job.model, name, view.low_rank(factors.first, factors.second))


def plan_stages(order: Sequence[str], blocks: Sequence[str] | None, mode: str) -> list[Stage]:
    """Layers in forward order, grouped into one stage per block (``mode`` "auto", "block" or
    "layer" with blocks), or one stage per layer."""
    use_blocks = bool(blocks) and mode != "exact"
    stages: list[Stage] = []
    for name in order:
        block = owning_block(name, blocks) if use_blocks else None
        if block is not None and stages and stages[-1].block == block:
            stages[-1] = Stage(stages[-1].layers + (name,), block)
            continue
        if block is not None and any(stage.block == block for stage in stages):
            raise ConfigError(f"the layers of block {block!r} do not run contiguously; use stage_mode='exact'")
        stages.append(Stage((name,), block))
    return stages


def owning_block(layer: str, blocks: Sequence[str]) -> str | None:
    """The innermost block whose name prefixes ``layer``, if any."""
    owners = [block for block in blocks if layer.startswith(block + ".")]
    return max(owners, key=len) if owners else None
