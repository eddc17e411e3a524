"""The original model's side of the stages, recorded once.

The original model never changes during a run, so what its stages read from it, each block's calls
and the inputs of the layers outside blocks, is the same at every stage. One pass records it for
every item, and the stages read it instead of running the original again (a prefix pass then runs
the compressed model only; an exact stage runs the layer's block alone, or nothing, on the original
side). The rows are the same bit for bit. The record is kept while it stays under
:data:`ORIGINAL_CACHE_BYTES`; above it the run notes so and the original runs per stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ...model._capture import BlockRecorder, LayerRecorder
from .._job import RunState

#: The positional and keyword arguments of one block call.
BlockCall = tuple[tuple[Any, ...], dict[str, Any]]
#: Every call of a block for one item.
ItemCalls = list[BlockCall]
#: The most bytes of the original model's recorded inputs a run keeps.
ORIGINAL_CACHE_BYTES = 2**30


class OriginalInputs:
    """Per item: each block's calls and each outside layer's inputs in the original model, recorded
    on first use (:meth:`block_calls`, :meth:`layer_inputs` return None where nothing is kept)."""

    def __init__(self, state: RunState, blocks: Sequence[str]) -> None:
        self.state = state
        self.blocks = list(blocks)
        self._calls: dict[str, list[ItemCalls]] | None = None
        self._inputs: dict[str, list[list[Tensor]]] = {}

    def block_calls(self, block: str) -> list[ItemCalls] | None:
        """``block``'s calls per item, or None."""
        self._ensure()
        return self._calls.get(block)

    def layer_inputs(self, names: Sequence[str]) -> list[dict[str, list[Tensor]]] | None:
        """Per item, each of ``names``'s inputs (layers outside blocks), or None."""
        self._ensure()
        if not names or any(name not in self._inputs for name in names):
            return None
        items = len(self.state.job.batches)
        return [{name: self._inputs[name][index] for name in names} for index in range(items)]

    def done(self, layers: Sequence[str]) -> None:
        """After a stage of ``layers``: drop what no later stage reads, the inputs of those outside
        blocks and the calls of the blocks before theirs (stages run in forward order)."""
        if not self._calls and not self._inputs:
            return
        for name in layers:
            self._inputs.pop(name, None)
        owner = owning_block(layers[-1], self.blocks) if layers else None
        order = self.state.need("probe", "stages").block_order
        if owner in order:
            for block in order[: order.index(owner)]:
                self._calls.pop(block, None)

    def _ensure(self) -> None:
        if self._calls is None:
            self._calls, self._inputs = self._record()

    def _record(self) -> tuple[dict[str, list[ItemCalls]], dict[str, list[list[Tensor]]]]:
        """One pass of the original over the items; nothing kept above the cap, or when a block or
        layer runs unlike on the first item (then the stages run the original as before)."""
        state = self.state
        job, source, probe = state.job, state.source, state.need("probe", "stages")
        calls: dict[str, list[ItemCalls]] = {block: [] for block in self.blocks if block in probe.block_calls}
        outside = [name for name in probe.order if owning_block(name, self.blocks) is None]
        inputs: dict[str, list[list[Tensor]]] = {name: [] for name in outside}
        size = 0
        with torch.no_grad():
            for item in job.batches:
                blocks, layers = (
                    BlockRecorder(job.original, list(calls)),
                    LayerRecorder(job.original, outside),
                )
                with blocks.attached(), layers.attached():
                    source.run(job.adapter, job.original, item)
                if any(len(blocks.calls[b]) != probe.block_calls[b] for b in calls) or any(
                    len(layers.inputs[n]) != probe.calls[n] for n in outside
                ):
                    return {}, {}
                for block in calls:
                    calls[block].append(blocks.calls[block])
                    size += sum(tensor_bytes(call) for call in blocks.calls[block])
                for name in outside:
                    inputs[name].append(layers.inputs[name])
                    size += tensor_bytes(layers.inputs[name])
                if size > ORIGINAL_CACHE_BYTES:
                    state.log.notes.append(
                        f"the original model's recorded inputs exceed {ORIGINAL_CACHE_BYTES / 2**30:g} GiB: "
                        "the stages run the original model as well"
                    )
                    return {}, {}
        state.count("original")
        return calls, inputs


def owning_block(layer: str, blocks: Sequence[str]) -> str | None:
    """The innermost block whose name prefixes ``layer``, if any."""
    owners = [block for block in blocks if layer.startswith(block + ".")]
    return max(owners, key=len) if owners else None


def tensor_bytes(value: Any) -> int:
    """Bytes of the tensors in a recorded call (nested tuples, lists and dicts)."""
    if isinstance(value, Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(tensor_bytes(item) for item in value)
    if isinstance(value, dict):
        return sum(tensor_bytes(item) for item in value.values())
    return 0
