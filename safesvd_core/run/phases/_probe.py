"""The probe phase: one forward pass on the first calibration item, before anything else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import torch

from ..._errors import ConfigError
from ...model._capture import BlockRecorder, LayerRecorder
from ...model._timeline import CallTimeline
from .._items import check_prediction, running_first
from .._job import Phase, RunState
from .._outputs import Probe
from ._original_inputs import owning_block


@attrs.frozen
class ProbePhase(Phase):
    """Records the forward order of the layers, how often each layer and block is called per item,
    the first input of each of the adapter's blocks (to tell later whether a block feeds the
    next) and which layers read one input (siblings); checks the plan's PDE family against the
    adapter's field description."""

    name: ClassVar[str] = "probe"
    writes: ClassVar[tuple[str, ...]] = ("probe",)

    def run(self, state: RunState) -> None:
        job = state.job
        item = job.batches[0]
        blocks = job.adapter.blocks(job.model) or []
        layers = LayerRecorder(job.original, state.layers)
        block_recorder = BlockRecorder(job.original, blocks)
        timeline = CallTimeline(job.original)
        with (
            torch.no_grad(),
            layers.attached(),
            block_recorder.attached(),
            timeline.attached(),
            running_first(item, "calibration"),
        ):
            calls = state.source.run(job.adapter, job.original, item)
        for prediction, batch in calls:
            check_prediction(prediction, job.adapter.reference(batch), "the calibration target")
        missing = [name for name in state.layers if not layers.inputs[name]]
        if missing:
            raise ConfigError(
                f"these compressible layers are never called by the model's forward pass: {missing}"
            )
        uncalled = [
            block
            for block in blocks
            if not block_recorder.calls[block] and any(name.startswith(block + ".") for name in state.layers)
        ]
        if (
            uncalled
        ):  # a container (ModuleList, ModuleDict) or a module whose parent calls its children itself
            children = [
                f"{uncalled[0]}.{child}"
                for child, _ in job.original.get_submodule(uncalled[0]).named_children()
            ]
            raise ConfigError(
                f"block(s) {', '.join(uncalled)} of block_names hold layers but are never called by the "
                "model's forward pass (a ModuleList or ModuleDict only holds modules): name the modules "
                f"that are called, one per block, e.g. {', '.join(children[:3]) or 'its children'}"
            )
        state.probe = Probe(
            order=tuple(layers.order),
            calls={name: len(v) for name, v in layers.inputs.items()},
            block_order=tuple(block_recorder.order),
            block_inputs={
                name: calls[0][0][0] for name, calls in block_recorder.calls.items() if calls and calls[0][0]
            },
            block_calls={name: len(calls) for name, calls in block_recorder.calls.items() if calls},
            rows={name: state.maps[name].row_count(inputs[0]) for name, inputs in layers.inputs.items()},
            input_groups=input_groups(
                layers.order, {name: calls[0] for name, calls in layers.inputs.items()}
            ),
            block_readers=block_readers(
                layers.inputs,
                block_recorder.calls,
                blocks,
                {name: state.maps[name].channel_dim for name in layers.inputs},
            ),
            first_calls=timeline.starts,
            single_calls={
                name: timeline.ends[name]
                for name, module in job.original.named_modules()
                if timeline.calls.get(name) == 1 and name in timeline.ends and next(module.children(), None)
            },
        )
        family = state.plan.family
        if family is not None:
            field = job.adapter.field(state.source.first_batch(job.adapter, item))
            if field is None:
                raise ConfigError(
                    f"family {family.name!r} needs a field description from the adapter; none was given: "
                    "pass adapter_options={'field_description': FieldDescription(...)} to the generic "
                    "adapter, or a framework adapter's channels=/roles= (docs/physics.md)"
                )
            family.check(field)
            if not isinstance(calls[0][0], torch.Tensor):
                raise ConfigError(
                    f"family {family.name!r} needs a prediction tensor (its physics terms take one field), "
                    f"but the model predicts a {type(calls[0][0]).__name__}: compress without a family"
                )


def _same_rows(layer_input: torch.Tensor, block_input: Any, channel_dim: int) -> bool:
    """Whether a layer's input holds the block input's data with the same rows: the very tensor, or
    for a layer over axis 1 (a 1×1 convolution) a contiguous view with the same batch and channel
    axes (``x.view(B, C, -1)`` of ``x``: an FNO's skip convolution)."""
    if not isinstance(block_input, torch.Tensor):
        return False
    same = (layer_input.data_ptr(), layer_input.storage_offset(), layer_input.dtype) == (
        block_input.data_ptr(),
        block_input.storage_offset(),
        block_input.dtype,
    )
    if not same:
        return False
    if (tuple(layer_input.shape), layer_input.stride()) == (tuple(block_input.shape), block_input.stride()):
        return True
    return (
        channel_dim == 1
        and layer_input.is_contiguous()
        and block_input.is_contiguous()
        and layer_input.numel() == block_input.numel()
        and tuple(layer_input.shape[:2]) == tuple(block_input.shape[:2])
    )


def block_readers(
    layer_inputs: Mapping[str, list[torch.Tensor]],
    block_calls: Mapping[str, list],
    blocks: Sequence[str],
    channel_dims: Mapping[str, int],
) -> dict[str, str]:
    """Layer outside every block → the block whose first positional input it reads at every call,
    with the same rows (:func:`_same_rows`: the block's recorded inputs then give the layer's)."""
    readers = {}
    for name, inputs in layer_inputs.items():
        if owning_block(name, blocks) is not None:
            continue
        for block in blocks:
            calls = block_calls.get(block) or []
            if len(calls) == len(inputs) and all(
                args and _same_rows(tensor, args[0], channel_dims[name])
                for tensor, (args, _) in zip(inputs, calls, strict=True)
            ):
                readers[name] = block
                break
    return readers


def input_groups(order: list[str], first_inputs: dict[str, torch.Tensor]) -> dict[str, str]:
    """Layer → the first layer in ``order`` whose first input is a view of the same tensor (the same
    storage and dtype): the same input (query, key and value), or parts of one tensor made before
    any of them ran (the Fourier modes of one spectral layer), so no layer of a group reads
    another's output."""
    groups: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name in order:
        tensor = first_inputs[name]
        key = (tensor.untyped_storage().data_ptr(), tensor.device, tensor.dtype)
        groups[name] = seen.setdefault(key, name)
    return groups
