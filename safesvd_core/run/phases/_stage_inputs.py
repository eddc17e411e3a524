"""Shifted statistics of one stage: clean and shifted inputs of its layers, paired row by row.

A *block* stage runs the block alone on cached block inputs, every call of the block per item
(the earlier layers of the same block are not yet compressed when they are taken: the documented
approximation). The cache is carried from a block to the next when each block runs once per
item and the next one reads its output (checked against the probe); otherwise a *prefix* pass
runs both models up to the block's last call (a rollout calls every block K times, and its later
calls depend on the whole model's earlier predictions). An *exact* stage is one layer, its
inputs taken by passes of the compressed model that stop right after the layer's last call. The
original model's side of both comes from one recorded pass (:mod:`._original_inputs`) when the
record fits; otherwise the original runs alongside.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..._errors import SafeSVDError
from ...kinds._interfaces import LayerSignals
from ...model._capture import BlockRecorder, LayerRecorder, run_until_stopped
from ...statistics._statistics import CalibrationStatistics, EstimatorFactory
from .._job import RunState
from .._outputs import Stage
from ._block_record import BlockRecord, record_block
from ._finished_modules import FinishedModules
from ._original_inputs import ItemCalls, OriginalInputs, owning_block


class StageInputs:
    """Collects the shifted statistics of stage after stage, caching block inputs along the chain."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.make = EstimatorFactory(state.plan.estimator_options)
        self.cache_block: str | None = None  # block whose inputs are cached
        self.clean_inputs: list[ItemCalls] = []  # per item
        self.shift_inputs: list[ItemCalls] = []
        blocks = state.job.adapter.blocks(state.job.model) or []
        self.blocks = blocks
        self.original = OriginalInputs(state, blocks) if _worth_recording(state, blocks) else None
        self.block_record: BlockRecord | None = None  # the original side of the current block stage
        self.unrecorded: set[str] = set()  # blocks whose original side runs per layer group
        probe = state.need("probe", "stages")
        self.finished = FinishedModules(state) if probe.single_calls else None

    def collect(self, stage: Stage, layers: tuple[str, ...] | None = None) -> dict[str, dict[str, Tensor]]:
        """Layer → the plan's shifted statistics of ``layers`` (default: every layer of ``stage``),
        reduced by the job's reducer."""
        state = self.state
        job, source, probe = state.job, state.source, state.need("probe", "stages")
        names = stage.layers if layers is None else layers
        views = {name: state.maps[name] for name in names}
        shapes = {name: (view.in_features, view.out_features) for name, view in views.items()}
        stats = CalibrationStatistics.create(shapes, state.plan.shifted_estimators, self.make)
        calls = {name: probe.calls[name] for name in names}
        if stage.block is not None:
            self._ensure_block_inputs(stage.block)
        recorded = self._recorded_clean(names) if stage.block is None else self._recorded_block(stage)
        with torch.no_grad():
            inside = [name for name in names if owning_block(name, self.blocks) == stage.block]
            # a block run stops once the layers inside it made their calls (the rest of the block
            # would only compute what no statistic reads)
            stop = calls if stage.block is None else {name: calls[name] for name in inside}
            for index, item in enumerate(job.batches):
                clean_rec = LayerRecorder(job.original, names, stop_after=stop)
                shift_rec = LayerRecorder(job.model, names, stop_after=stop)
                if stage.block is None:
                    clean_inputs = recorded(index) if recorded is not None else None
                    if clean_inputs is None:
                        with clean_rec.attached():
                            run_until_stopped(source.run, job.adapter, job.original, item)
                        clean_inputs = clean_rec.inputs
                    with shift_rec.attached(), self._replaying(names, index):
                        run_until_stopped(source.run, job.adapter, job.model, item)
                else:
                    for model, recorder, inputs in (
                        (job.original, clean_rec, self.clean_inputs),
                        (job.model, shift_rec, self.shift_inputs),
                    ):
                        if model is job.original and recorded is not None:
                            recorder.inputs.update(recorded(index))
                        elif inside:
                            replay = (
                                self._replaying(inside, index, within=stage.block)
                                if model is job.model
                                else contextlib.nullcontext()
                            )
                            with recorder.attached(), replay:
                                run_until_stopped(_run_block, model.get_submodule(stage.block), inputs[index])
                        for name in names:  # a layer reading the block's input: the block's calls
                            if name not in inside:
                                recorder.inputs[name] = [args[0] for args, _ in inputs[index]]
                    clean_inputs = clean_rec.inputs
                domain = job.adapter.domain(source.first_batch(job.adapter, item))
                updates = []
                for name in names:
                    clean_calls, shift_calls = clean_inputs[name], shift_rec.inputs[name]
                    if len(clean_calls) != len(shift_calls):
                        raise SafeSVDError(
                            f"layer {name!r} ran {len(clean_calls)} times in the original and "
                            f"{len(shift_calls)} times in the compressed model"
                        )
                    updates.extend(
                        (
                            name,
                            LayerSignals(
                                inputs=views[name].rows(clean_in),
                                shifted_inputs=views[name].rows(shift_in),
                                domain=domain,
                            ),
                        )
                        for clean_in, shift_in in zip(clean_calls, shift_calls)
                    )
                stats.update_all(updates)
        self._finish(names if stage.block is None else inside, stage.block)
        job.reducer.reduce(stats)
        return {name: stats.layer(name) for name in names}

    def _replaying(self, names: Sequence[str], index: int, *, within: str | None = None):
        """While the compressed model (or its block ``within``, run alone) runs on item ``index`` up
        to the first call of ``names``: its finished submodules replayed (:mod:`._finished_modules`)."""
        if self.finished is None:
            return contextlib.nullcontext()
        before = self.finished.before(names)
        return self.finished.running(self.state.job.model, before, index, within=within)

    def _finish(self, names: Sequence[str], within: str | None = None) -> None:
        """After a stage's passes up to the first call of ``names``: count a pass that replayed, and
        keep what the passes recorded."""
        if self.finished is not None and names:
            if self.finished.replayed(self.finished.before(names), within):
                self.state.count("replays")
            self.finished.finish(len(self.state.job.batches))

    def _recorded_clean(self, names: tuple[str, ...]):
        """For an exact stage: item index → the original's inputs of ``names`` from the record (its
        block run alone on the recorded calls, or the recorded inputs of layers outside blocks), or
        None where the original must run up to the layers."""
        if self.original is None:
            return None
        owners = {owning_block(name, self.blocks) for name in names}
        if owners == {None}:
            inputs = self.original.layer_inputs(names)
            return None if inputs is None else inputs.__getitem__
        owner = owners.pop() if len(owners) == 1 else None
        calls = self.original.block_calls(owner) if owner is not None else None
        if calls is None:
            return None
        record = self._block_layers(owner, calls)
        if record is not None:
            return lambda index: {name: record.layer_inputs[index][name] for name in names}
        block = self.state.job.original.get_submodule(owner)

        def run(index: int) -> dict[str, list[Tensor]]:
            recorder = LayerRecorder(self.state.job.original, names)
            with recorder.attached():
                _run_block(block, calls[index])
            return recorder.inputs

        return run

    def _recorded_block(self, stage: Stage):
        """For a block stage: item index → the original's inputs of the block's layers, or None where
        the original block runs per layer group."""
        record = self._block_layers(stage.block, self.clean_inputs)
        return None if record is None else record.layer_inputs.__getitem__

    def _block_layers(self, block: str, calls: list[ItemCalls]) -> BlockRecord | None:
        """The original's inputs of ``block``'s layers and its outputs on each item's ``calls``, from
        one run of the block per item (:mod:`._block_record`), kept while its stages last; None where
        not kept (the reason noted once)."""
        if block in self.unrecorded:
            return None
        if self.block_record is None or self.block_record.block != block:
            order = self.state.need("probe", "stages").order
            inside = [name for name in order if owning_block(name, self.blocks) == block]
            record, reason = record_block(self.state.job.original, block, inside, calls)
            if record is None:
                self.state.log.notes.append(reason)
                self.unrecorded.add(block)
                return None
            self.state.count("original blocks")
            self.block_record = record
        return self.block_record

    def _ensure_block_inputs(self, block: str) -> None:
        if self.cache_block == block:
            return
        job, source = self.state.job, self.state.source
        calls = self.state.need("probe", "stages").block_calls[block]
        recorded = self.original.block_calls(block) if self.original is not None else None
        self.clean_inputs, self.shift_inputs = ([], []) if recorded is None else (recorded, [])
        models = ((job.original, self.clean_inputs),) if recorded is None else ()
        with torch.no_grad():
            for index, item in enumerate(job.batches):
                for model, store in (*models, (job.model, self.shift_inputs)):
                    recorder = BlockRecorder(model, [block], stop_at=block, stop_after=calls)
                    replay = (
                        self._replaying((block,), index) if model is job.model else contextlib.nullcontext()
                    )
                    with recorder.attached(), replay:
                        run_until_stopped(source.run, job.adapter, model, item)
                    if len(recorder.calls[block]) != calls:
                        raise SafeSVDError(
                            f"block {block!r} ran {len(recorder.calls[block])} times on a calibration "
                            f"item, {calls} times on the first one; every item must call it alike"
                        )
                    store.append(recorder.calls[block])
        self._finish((block,))
        self.state.count("prefix")
        self.cache_block = block

    def advance(self, stage: Stage) -> None:
        """After ``stage`` is solved: move the block-input caches to the next block of the chain
        (and drop the recorded original inputs no later stage reads)."""
        if self.original is not None:
            self.original.done(stage.layers)
        if stage.block is None:  # an exact stage: a block record serves its block's next ones
            self.cache_block = None
            return
        try:
            self._carry(stage)
        finally:
            if self.finished is not None:  # the block's replays served its stage only
                self.finished.forget(stage.block)

    def _carry(self, stage: Stage) -> None:
        """After block ``stage``: the next block's inputs from this block's outputs, where the next
        block reads them (else the next block's stage takes a prefix pass)."""
        record, self.block_record = self.block_record, None
        if record is not None and record.block != stage.block:
            record = None
        if self.cache_block != stage.block:  # a block whose layers all stay dense
            self.cache_block = None
            return
        state = self.state
        probe = state.need("probe", "stages")
        order = probe.block_order
        position = order.index(stage.block)
        if position + 1 >= len(order) or not probe.chained_blocks:
            self.cache_block = None
            return
        following = order[position + 1]
        job = state.job
        original_block = job.original.get_submodule(stage.block)
        # the first item decides whether ``following`` is fed by this block: the rest is carried only then
        first = (
            self._carried(original_block, self.clean_inputs[:1])
            if record is None
            else self._next_inputs(record.outputs[:1], self.clean_inputs[:1])
        )
        expected = probe.block_inputs.get(following)
        got = first[0][0][0][0] if first else None
        if (
            expected is None
            or got is None
            or expected.shape != got.shape
            or not torch.allclose(got, expected, rtol=1e-4, atol=1e-5)
        ):
            # ``following`` is not fed by this block (a skip, a merge, a new level of a U-Net): its
            # inputs are taken afresh by a prefix pass when its stage starts (counted in ``passes``)
            self.cache_block = None
            return
        new_clean = first + (
            self._carried(original_block, self.clean_inputs[1:])
            if record is None
            else self._next_inputs(record.outputs[1:], self.clean_inputs[1:])
        )
        new_shift = self._carried(job.model.get_submodule(stage.block), self.shift_inputs, stage.block)
        self.clean_inputs, self.shift_inputs = new_clean, new_shift
        self.cache_block = following

    def _carried(self, block: nn.Module, cached: list[ItemCalls], name: str | None = None) -> list[ItemCalls]:
        """The next block's inputs: ``block``'s output on each cached input, its other arguments kept;
        ``name``: the compressed model's block, whose finished submodules kept are replayed."""
        outputs = []
        with torch.no_grad():
            for index, [(args, kwargs)] in enumerate(cached):
                with self._replaying_solved(name, index):
                    outputs.append([block(*args, **kwargs)])
        return self._next_inputs(outputs, cached)

    def _replaying_solved(self, block: str | None, index: int):
        """While compressed ``block``, every layer of it solved, runs alone on item ``index``: the
        submodules kept for it replayed, nothing recorded."""
        if self.finished is None or block is None or block not in self.finished.ends:
            return contextlib.nullcontext()
        before = self.finished.ends[block]
        return self.finished.running(self.state.job.model, before, index, within=block, record=False)

    def _next_inputs(self, outputs: list[list], cached: list[ItemCalls]) -> list[ItemCalls]:
        """The next block's inputs from a block's ``outputs`` on each ``cached`` input (one call an
        item), its other arguments kept."""
        adapter = self.state.job.adapter
        return [
            [((adapter.next_block_input(output), *args[1:]), kwargs)]
            for [output], [(args, kwargs)] in zip(outputs, cached, strict=True)
        ]


def _run_block(block: nn.Module, calls: ItemCalls) -> None:
    """Run ``block`` on each recorded call."""
    for args, kwargs in calls:
        block(*args, **kwargs)


def _worth_recording(state: RunState, blocks: Sequence[str]) -> bool:
    """Whether the stages will read the original more than once: exact stages (no blocks, layers
    outside them, or the exact mode), or blocks whose inputs are not carried from block to block."""
    probe = state.need("probe", "stages")
    return bool(
        not blocks
        or state.plan.stage_mode == "exact"
        or not probe.chained_blocks
        or any(owning_block(name, blocks) is None for name in probe.order)
    )
