"""The original model's side of one block stage, recorded by one run of the block per item.

A block stage in layer mode solves its layers group by group, and each group's shifted inputs need
a run of the compressed block. The original block does not change, so one run of it per item
gives every group's clean inputs and the block's outputs, which carry the next block's inputs
(:meth:`StageInputs.advance`). The rows are the same bit for bit as a run per group. The record is
kept under :data:`BLOCK_RECORD_BYTES`, and only when the block changed none of the recorded inputs
in place; otherwise the stage runs the original block per group as before (noted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from ...model._capture import LayerRecorder
from ._original_inputs import ItemCalls, tensor_bytes

#: The most bytes one block's record of layer inputs may take.
BLOCK_RECORD_BYTES = 2**28


@attrs.frozen
class BlockRecord:
    """Per item: the inputs of the block's layers (layer → one tensor per call) and the block's
    output at each call, in the original model."""

    block: str
    layer_inputs: list[dict[str, list[Tensor]]]
    outputs: list[list[Any]]


def record_block(
    model: nn.Module, block: str, names: Sequence[str], items: Sequence[ItemCalls]
) -> tuple[BlockRecord | None, str]:
    """One run of ``model``'s ``block`` on each item's recorded calls, keeping the inputs of its layers
    ``names`` and its outputs; None and the reason where the record is not kept."""
    module = model.get_submodule(block)
    layer_inputs, outputs, size = [], [], 0
    with torch.no_grad():
        for calls in items:
            recorder = LayerRecorder(model, names)
            with recorder.attached():
                outputs.append([module(*args, **kwargs) for args, kwargs in calls])
            changed = recorder.changed_in_place()
            if changed:
                return None, (
                    f"block {block!r} changes the input of {changed[0]!r} in place after the layer read "
                    "it, so its original side is run per layer group"
                )
            layer_inputs.append(recorder.inputs)
            size += tensor_bytes(recorder.inputs)
            if size > BLOCK_RECORD_BYTES:
                return None, (
                    f"the original inputs of block {block!r}'s layers exceed "
                    f"{BLOCK_RECORD_BYTES / 2**20:g} MiB, so its original side is run per layer group"
                )
    return BlockRecord(block, layer_inputs, outputs), ""
