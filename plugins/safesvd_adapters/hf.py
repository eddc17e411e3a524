"""The ``transformers`` adapter: HF-built operators with Poseidon's calling convention.

Batches are Poseidon's dicts: ``pixel_values`` ``(B, C, H, W)``, ``labels`` (the target), and
optionally ``time`` (lead time), ``pixel_mask`` and ``domain``. The model is called as
``model(pixel_values=..., time=..., [pixel_mask=..., labels=...])`` and the prediction is the
output's ``output_key`` attribute (``.output``, as Poseidon's ``ScOTOutput``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
from torch import Tensor, nn

from safesvd_core import FieldDescription, Role
from safesvd_core.plugin import ConfigError, ModelAdapter, one_of

from .base_losses import grouped_relative
from .framework import FieldAdapter, require, sibling_chain
from .selection import NORMALISATION, POSITION_BIAS, TIME_CONDITIONING, embedding, recovery

_VECTOR_ROLES = {Role.VELOCITY_X, Role.VELOCITY_Y, Role.VELOCITY_Z, Role.MOMENTUM_X, Role.MOMENTUM_Y, Role.MOMENTUM_Z}
_INPUTS = ("pixel_values", "labels")


def _boundaries(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    bounds = tuple(value)
    if len(bounds) < 2 or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds) or bounds[0] != 0 \
            or any(b >= c for b, c in zip(bounds, bounds[1:])):
        raise ConfigError("channel_groups must be increasing channel boundaries starting at 0, "
                          f"e.g. (0, 1, 3, 4); got {value!r}")
    return bounds


def role_groups(field: FieldDescription) -> list[list[int]]:
    """Unmasked channels grouped as Poseidon does: the adjacent components of one vector (velocity
    or momentum) form one group, every other channel is its own."""
    groups: list[list[int]] = []
    previous: str | None = None
    for index in field.active_channels():
        role = field.roles[index]
        vector = role.value.rpartition("_")[0] if role in _VECTOR_ROLES else None
        if vector is not None and vector == previous and groups[-1][-1] == index - 1:
            groups[-1].append(index)
        else:
            groups.append([index])
        previous = vector
    return groups


@attrs.frozen(kw_only=True)
class TransformersAdapter(FieldAdapter, ModelAdapter):
    """Swinv2 (Poseidon scOT-like) and ViT operators built from HF ``transformers`` classes.

    ``loss="poseidon"`` (default) is Poseidon's per-channel-group relative Lp (``p`` 1 or 2):
    groups from ``channel_groups`` (Poseidon's ``channel_slice_list_normalized_loss``, e.g.
    ``(0, 1, 3, 4)`` for [ρ | u, v | p]), else from the channel roles (vector components together),
    else all channels as one group; masked channels are left out. Skipped by default: the
    ``Linear(1, d)`` time conditioning, relative-position-bias MLPs, patch embedding, patch recovery
    and output heads, and anything inside a normalisation layer. Blocks: the layers of a HF ViT
    encoder (a true chain), or every ``Swinv2Layer`` of a Swinv2 U-Net (a chain within each stage;
    the engine takes a prefix pass where a stage starts, after a downsampling or a skip merge).
    """

    name: ClassVar[str] = "transformers"
    skip_rules: ClassVar = (
        TIME_CONDITIONING, POSITION_BIAS, embedding("*patch_embeddings*"),
        recovery("*patch_recovery*", "recovery", "*.recovery"), NORMALISATION,
    )
    special_losses: ClassVar = ("poseidon",)

    loss: Any = "poseidon"
    p: int = attrs.field(default=1, validator=one_of((1, 2)))
    channel_groups: tuple[int, ...] | None = attrs.field(default=None, converter=_boundaries)
    output_key: str = "output"

    def __attrs_post_init__(self) -> None:
        require("transformers", adapter=self.name, extra="transformers")
        super().__attrs_post_init__()
        if self.channel_groups is not None and self.channels is not None and self.channel_groups[-1] != len(self.channels):
            raise ConfigError(f"channel_groups end at {self.channel_groups[-1]}, but there are {len(self.channels)} channels")

    def _item(self, batch: Any, key: str) -> Any:
        if not isinstance(batch, Mapping):
            raise ConfigError(f"the transformers adapter expects dict batches with keys {', '.join(_INPUTS)}, "
                              f"got {type(batch).__name__}")
        if key not in batch:
            raise ConfigError(f"the batch has no {key!r}; its keys are {sorted(batch)}")
        return batch[key]

    def predict(self, model: nn.Module, batch: Any) -> Tensor:
        inputs = {"pixel_values": self._item(batch, "pixel_values")}
        if "time" in batch:
            inputs["time"] = batch["time"]
        if "pixel_mask" in batch:
            inputs["pixel_mask"], inputs["labels"] = batch["pixel_mask"], self._item(batch, "labels")
        output = model(**inputs)
        if not hasattr(output, self.output_key):
            raise ConfigError(f"the model's output ({type(output).__name__}) has no attribute {self.output_key!r} "
                              "(option output_key)")
        return getattr(output, self.output_key)

    def reference(self, batch: Any) -> Tensor:
        return self._item(batch, "labels")

    def domain(self, batch: Any) -> str | None:
        label = batch.get("domain") if isinstance(batch, Mapping) else None
        return None if label is None else str(label)

    def trajectory_steps(self, item: Any) -> int | None:
        """A Poseidon-style rollout item has ``labels`` of shape ``(B, K, C, H, W)`` beside
        ``pixel_values`` ``(B, C, H, W)``: the true states 1…K lead times (``time``) apart."""
        inputs, labels = self._item(item, "pixel_values"), self._item(item, "labels")
        if labels.ndim == inputs.ndim + 1 and labels.shape[0] == inputs.shape[0] and labels.shape[2:] == inputs.shape[1:]:
            return int(labels.shape[1])
        return None

    def rollout_step(self, sequence: Any, state: Tensor | None, step: int) -> Any:
        """Step ``step`` of a rollout item: the previous prediction (or ``pixel_values``) as input,
        the same ``time`` (lead time per step) and ``pixel_mask``, ``labels[:, step - 1]`` as target."""
        steps = self.trajectory_steps(sequence)
        if steps is None:
            raise ConfigError("a rollout batch of the transformers adapter has labels shaped (B, K, C, H, W) beside "
                              f"pixel_values (B, C, H, W); got {tuple(self._item(sequence, 'labels').shape)}")
        if not 1 <= step <= steps:
            raise ConfigError(f"rollout step {step} is beyond the trajectory's {steps} steps")
        batch = dict(sequence)
        batch["labels"] = sequence["labels"][:, step - 1]
        if state is not None:
            batch["pixel_values"] = state
        return batch

    def base_loss(self, prediction: Tensor, batch: Any) -> Tensor:
        if self.loss != "poseidon":
            return super().base_loss(prediction, batch)
        return grouped_relative(prediction, self.reference(batch), self.groups(prediction.shape[1], batch), p=self.p)

    def groups(self, channels: int, batch: Any) -> list[list[int]]:
        """The channel groups of the ``poseidon`` loss for a prediction with ``channels`` channels."""
        if self.channels is not None and len(self.channels) != channels:
            raise ConfigError(f"the prediction has {channels} channels, but the adapter names {len(self.channels)}: "
                              f"{', '.join(self.channels)}")
        active = set(self.active_channels() or range(channels))
        if self.channel_groups is not None:
            bounds: Sequence[int] = self.channel_groups
            groups = [[i for i in range(a, b) if i in active] for a, b in zip(bounds, bounds[1:])]
            return [group for group in groups if group]
        field = self.field(batch)
        return role_groups(field) if field is not None else [sorted(active)]

    def blocks(self, model: nn.Module) -> list[str] | None:
        from transformers.models.swinv2.modeling_swinv2 import Swinv2Layer
        from transformers.models.vit.modeling_vit import ViTLayer

        swin_layers = [name for name, module in model.named_modules() if isinstance(module, Swinv2Layer)]
        return swin_layers or sibling_chain(model, ViTLayer)
