"""Shifted statistics of one stage: clean and shifted inputs of its layers, paired row by row.

A *block* stage runs the block alone on cached block inputs, every call of the block per item
(the earlier layers of the same block are not yet compressed when they are taken: the documented
approximation). The cache is carried from a block to the next when each block runs once per
item and the next one reads its output (checked against the probe); otherwise a *prefix* pass
runs both models up to the block's last call (a rollout calls every block K times, and its later
calls depend on the whole model's earlier predictions). An *exact* stage is one layer, its
inputs taken by passes of both models that stop right after the layer's last call. The original
model's side of an exact stage does not change from stage to stage: when the adapter names blocks,
one pass records the original's block inputs (kept while under :data:`ORIGINAL_CACHE_BYTES`) and an
exact stage inside a block runs that block alone on them, the same rows bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..._errors import SafeSVDError
from ...kinds._interfaces import LayerSignals
from ...model._capture import BlockRecorder, LayerRecorder, run_until_stopped
from ...statistics._statistics import CalibrationStatistics, EstimatorFactory
from .._job import RunState
from .._outputs import Stage

#: The positional and keyword arguments of one block call.
BlockCall = tuple[tuple[Any, ...], dict[str, Any]]
#: Every call of a block for one item.
ItemCalls = list[BlockCall]
#: The most bytes of the original model's block inputs kept for exact stages; above it, each exact
#: stage runs the original model as well (noted in the run's notes).
ORIGINAL_CACHE_BYTES = 2**30


class StageInputs:
    """Collects the shifted statistics of stage after stage, caching block inputs along the chain."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.make = EstimatorFactory(state.plan.estimator_options)
        self.cache_block: str | None = None  # block whose inputs are cached
        self.clean_inputs: list[ItemCalls] = []  # per item
        self.shift_inputs: list[ItemCalls] = []
        self.original_blocks: dict[str, list[ItemCalls]] | None = None  # exact stages: block → per item

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
        cached = self._original_block(names) if stage.block is None else None
        with torch.no_grad():
            for index, item in enumerate(job.batches):
                clean_stop = None if stage.block or cached else calls
                clean_rec = LayerRecorder(job.original, names, stop_after=clean_stop)
                shift_rec = LayerRecorder(job.model, names, stop_after=None if stage.block else calls)
                if stage.block is None:
                    with clean_rec.attached():
                        if cached is not None:
                            _run_block(
                                job.original.get_submodule(cached), self.original_blocks[cached][index]
                            )
                        else:
                            run_until_stopped(source.run, job.adapter, job.original, item)
                    with shift_rec.attached():
                        run_until_stopped(source.run, job.adapter, job.model, item)
                else:
                    for model, recorder, inputs in (
                        (job.original, clean_rec, self.clean_inputs),
                        (job.model, shift_rec, self.shift_inputs),
                    ):
                        with recorder.attached():
                            _run_block(model.get_submodule(stage.block), inputs[index])
                domain = job.adapter.domain(source.first_batch(job.adapter, item))
                for name in names:
                    clean_calls, shift_calls = clean_rec.inputs[name], shift_rec.inputs[name]
                    if len(clean_calls) != len(shift_calls):
                        raise SafeSVDError(
                            f"layer {name!r} ran {len(clean_calls)} times in the original and "
                            f"{len(shift_calls)} times in the compressed model"
                        )
                    for clean_in, shift_in in zip(clean_calls, shift_calls):
                        stats.update(
                            name,
                            LayerSignals(
                                inputs=views[name].rows(clean_in),
                                shifted_inputs=views[name].rows(shift_in),
                                domain=domain,
                            ),
                        )
        job.reducer.reduce(stats)
        return {name: stats.layer(name) for name in names}

    def _original_block(self, names: tuple[str, ...]) -> str | None:
        """The block owning every layer of an exact stage when the original's block inputs are
        cached (recorded on first use), else None: the original then runs up to the layers."""
        blocks = self.state.job.adapter.blocks(self.state.job.model) or []
        owners = {owning_block(name, blocks) for name in names}
        if len(owners) != 1 or None in owners:
            return None
        if self.original_blocks is None:
            self.original_blocks = self._record_original(blocks)
        block = owners.pop()
        return block if block in self.original_blocks else None

    def _record_original(self, blocks: list[str]) -> dict[str, list[ItemCalls]]:
        """One pass of the original over the items recording every block's calls (none kept when
        they exceed :data:`ORIGINAL_CACHE_BYTES`, or a block runs unlike on the first item)."""
        state = self.state
        job, source, probe = state.job, state.source, state.need("probe", "stages")
        kept: dict[str, list[ItemCalls]] = {block: [] for block in blocks if block in probe.block_calls}
        size = 0
        with torch.no_grad():
            for item in job.batches:
                recorder = BlockRecorder(job.original, list(kept))
                with recorder.attached():
                    source.run(job.adapter, job.original, item)
                for block, calls in recorder.calls.items():
                    if len(calls) != probe.block_calls[block]:
                        return {}
                    kept[block].append(calls)
                    size += sum(_bytes(call) for call in calls)
                if size > ORIGINAL_CACHE_BYTES:
                    state.log.notes.append(
                        f"the original model's block inputs exceed {ORIGINAL_CACHE_BYTES / 2**30:.0f} GiB: "
                        "each exact stage runs the original model as well"
                    )
                    return {}
        state.count("original blocks")
        return kept

    def _ensure_block_inputs(self, block: str) -> None:
        if self.cache_block == block:
            return
        job, source = self.state.job, self.state.source
        calls = self.state.need("probe", "stages").block_calls[block]
        self.clean_inputs, self.shift_inputs = [], []
        with torch.no_grad():
            for item in job.batches:
                for model, store in ((job.original, self.clean_inputs), (job.model, self.shift_inputs)):
                    recorder = BlockRecorder(model, [block], stop_at=block, stop_after=calls)
                    with recorder.attached():
                        run_until_stopped(source.run, job.adapter, model, item)
                    if len(recorder.calls[block]) != calls:
                        raise SafeSVDError(
                            f"block {block!r} ran {len(recorder.calls[block])} times on a calibration "
                            f"item, {calls} times on the first one; every item must call it alike"
                        )
                    store.append(recorder.calls[block])
        self.state.count("prefix")
        self.cache_block = block

    def advance(self, stage: Stage) -> None:
        """After ``stage`` is solved: move the block-input caches to the next block of the chain."""
        if (
            stage.block is None or self.cache_block != stage.block
        ):  # an exact stage, or a block whose layers all stay dense
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
        new_clean, new_shift = (
            self._carried(model.get_submodule(stage.block), cached)
            for model, cached in ((job.original, self.clean_inputs), (job.model, self.shift_inputs))
        )
        expected = probe.block_inputs.get(following)
        got = new_clean[0][0][0][0] if new_clean else None
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
        self.clean_inputs, self.shift_inputs = new_clean, new_shift
        self.cache_block = following

    def _carried(self, block: nn.Module, cached: list[ItemCalls]) -> list[ItemCalls]:
        """The next block's inputs: ``block``'s output on each cached input, its other arguments kept."""
        adapter = self.state.job.adapter
        with torch.no_grad():
            return [
                [((adapter.next_block_input(block(*args, **kwargs)), *args[1:]), kwargs)]
                for [(args, kwargs)] in cached
            ]


def _run_block(block: nn.Module, calls: ItemCalls) -> None:
    """Run ``block`` on each recorded call."""
    for args, kwargs in calls:
        block(*args, **kwargs)


def owning_block(layer: str, blocks: Sequence[str]) -> str | None:
    """The innermost block whose name prefixes ``layer``, if any."""
    owners = [block for block in blocks if layer.startswith(block + ".")]
    return max(owners, key=len) if owners else None


def _bytes(value: Any) -> int:
    """Bytes of the tensors in a recorded call (nested tuples, lists and dicts)."""
    if isinstance(value, Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_bytes(item) for item in value)
    if isinstance(value, dict):
        return sum(_bytes(item) for item in value.values())
    return 0
