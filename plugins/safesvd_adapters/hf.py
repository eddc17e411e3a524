"""The ``transformers`` adapter: HF-built operators with Poseidon's calling convention.

Batches are Poseidon's dicts: ``pixel_values`` ``(B, C, H, W)``, ``labels`` (the target), and
optionally ``time`` (lead time), ``pixel_mask`` (``(B, C)`` as Poseidon's data loaders give it, or
``(B, C, H, W)``) and ``domain``. The model is called as ``model(pixel_values=..., time=...,
[pixel_mask=..., labels=...])`` and the prediction is the output's ``output_key`` attribute
(``.output``, as Poseidon's ``ScOTOutput``). Poseidon's own ``ScOT`` is recognised without importing
it: its layers by class name, its loss from its config (:meth:`TransformersAdapter.for_model`).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import torch
from torch import Tensor, nn

from safesvd_core import FieldDescription, Role
from safesvd_core.plugin import ConfigError, ModelAdapter, one_of

from .base_losses import grouped_relative
from .framework import FieldAdapter, require, sibling_chain
from .poseidon import GROUPS_FIELD, boundaries, bounded_groups, config_loss, expand_mask, with_known
from .selection import NORMALISATION, POSITION_BIAS, TIME_CONDITIONING, embedding, recovery

_VECTOR_ROLES = {
    Role.VELOCITY_X,
    Role.VELOCITY_Y,
    Role.VELOCITY_Z,
    Role.MOMENTUM_X,
    Role.MOMENTUM_Y,
    Role.MOMENTUM_Z,
}
_INPUTS = ("pixel_values", "labels")
#: Blocks recognised by class name, without importing their package: Poseidon's ScOT layers and
#: the ConvNeXt blocks on its skip connections.
BLOCK_CLASS_NAMES = ("ScOTLayer", "ConvNeXtBlock")


def _transformers_version() -> str:
    try:
        import transformers
    except ImportError:
        return "none"
    return transformers.__version__


def role_groups(field: FieldDescription) -> list[list[int]]:
    """Channels grouped as Poseidon does: the adjacent components of one vector (velocity or
    momentum) form one group, every other channel is its own."""
    groups: list[list[int]] = []
    previous: str | None = None
    for index, role in enumerate(field.roles):
        vector = role.value.rpartition("_")[0] if role in _VECTOR_ROLES else None
        if vector is not None and vector == previous and groups[-1][-1] == index - 1:
            groups[-1].append(index)
        else:
            groups.append([index])
        previous = vector
    return groups


@attrs.frozen(kw_only=True)
class TransformersAdapter(FieldAdapter, ModelAdapter):
    """Swinv2 (Poseidon's ScOT and scOT-like) and ViT operators built from HF ``transformers`` classes.

    ``loss="poseidon"`` (default) is ScOT's training loss: per channel group, the relative Lp
    ``mean|p − t|^p / (mean|t|^p + 1e-10)``, then the mean over every group. Groups come from
    ``channel_groups`` (boundaries, e.g. ``(0, 1, 3, 4)`` for [ρ | u, v | p]), else from a ScOT config's
    ``channel_slice_list_normalized_loss`` (read by :meth:`for_model`, with its ``p``), else from the
    channel roles (vector components together), else all channels form one group. Masked entries
    (the ``masked`` channels and the batch's ``pixel_mask``) take the labels' values, as in ScOT: they
    carry no error, and a group masked whole adds a zero term. Skipped by default: the ``Linear(1, d)``
    time conditioning, relative-position-bias MLPs, patch embedding, patch recovery and output
    heads, and anything inside a normalisation layer. Blocks: every ``Swinv2Layer``, ScOT's
    ``ScOTLayer`` and ``ConvNeXtBlock`` (by class name), else the layers of a HF ViT encoder.
    """

    name: ClassVar[str] = "transformers"
    skip_rules: ClassVar = (
        TIME_CONDITIONING,
        POSITION_BIAS,
        embedding("*patch_embeddings*"),
        recovery("*patch_recovery*", "recovery", "*.recovery"),
        NORMALISATION,
    )
    special_losses: ClassVar = ("poseidon",)

    loss: Any = "poseidon"
    #: 1 or 2; None: the model's ScOT config's ``p``, else 1.
    p: int | None = attrs.field(default=None, validator=one_of((None, 1, 2)))
    channel_groups: tuple[int, ...] | None = attrs.field(default=None, converter=boundaries)
    output_key: str = "output"
    #: What a rollout item's ``time`` is: ``"step"``, the lead time of each step (fed to every step as it
    #: is), or ``"total"``, Poseidon's ``ar_steps`` convention: the lead time of the whole trajectory, each
    #: of its K steps fed ``time / K``. Unset (None): ``"step"``, said in a warning at the first rollout
    #: step of a ScOT model (:meth:`for_model` settles it for any other).
    rollout_time: str | None = attrs.field(default=None, validator=one_of((None, "step", "total")))

    def __attrs_post_init__(self) -> None:
        require("transformers", adapter=self.name, extra="transformers")
        super().__attrs_post_init__()
        if (
            self.channel_groups is not None
            and self.channels is not None
            and self.channel_groups[-1] != len(self.channels)
        ):
            raise ConfigError(
                f"channel_groups end at {self.channel_groups[-1]}, but there are {len(self.channels)} "
                "channels"
            )

    def for_model(self, model: nn.Module) -> TransformersAdapter:
        """With a ScOT config (``model.config`` has ``channel_slice_list_normalized_loss``), the
        ``poseidon`` loss takes its groups and ``p``; ``channel_groups`` or ``p`` given here must agree
        with it. A config without groups (ScOT then trains with plain L1/MSE) gives ``l1``/``mse``."""
        if self.rollout_time is None and config_loss(model) is None:  # not a ScOT: no convention to guess
            return attrs.evolve(self, rollout_time="step").for_model(model)
        settings = config_loss(model) if self.loss == "poseidon" else None
        if settings is None:
            return self
        groups, p = settings["groups"], settings["p"]
        for option, field, given, found in (
            ("channel_groups", GROUPS_FIELD, self.channel_groups, groups),
            ("p", "p", self.p, p),
        ):
            if given is not None and found is not None and given != found:
                raise ConfigError(
                    f"{option}={given!r} disagrees with the model's config ({field}={found!r}), which "
                    f"ScOT trains with; leave {option} unset to use the config's"
                )
        groups = self.channel_groups or groups
        if groups is None:
            return attrs.evolve(self, loss="l1" if p == 1 else "mse", p=p)
        if self.channels is not None and groups[-1] != len(self.channels):
            raise ConfigError(
                f"the model's config groups the loss's channels as {list(groups)}, but the adapter names "
                f"{len(self.channels)} channels: {', '.join(self.channels)}"
            )
        return attrs.evolve(self, channel_groups=groups, p=p)

    def _item(self, batch: Any, key: str) -> Any:
        if not isinstance(batch, Mapping):
            raise ConfigError(
                f"the transformers adapter expects dict batches with keys {', '.join(_INPUTS)}, "
                f"got {type(batch).__name__}"
            )
        if key not in batch:
            raise ConfigError(f"the batch has no {key!r}; its keys are {sorted(batch)}")
        return batch[key]

    def predict(self, model: nn.Module, batch: Any) -> Tensor:
        inputs = {"pixel_values": self._item(batch, "pixel_values")}
        if "time" in batch:
            inputs["time"] = batch["time"]
        if "pixel_mask" in batch:
            inputs["pixel_mask"], inputs["labels"] = batch["pixel_mask"], self._item(batch, "labels")
        try:
            output = model(**inputs)
        except AttributeError as error:
            if "get_head_mask" in str(error):  # Poseidon's ScOT on transformers 5, which removed it
                raise ConfigError(
                    f"{type(model).__name__} calls get_head_mask, which transformers 5 removed (installed: "
                    f"transformers {_transformers_version()}); Poseidon's ScOT needs transformers 4.x: "
                    "pip install 'safesvd[poseidon]' (docs/adapters.md)"
                ) from error
            raise
        if not hasattr(output, self.output_key):
            raise ConfigError(
                f"the model's output ({type(output).__name__}) has no attribute {self.output_key!r} "
                "(option output_key)"
            )
        return getattr(output, self.output_key)

    def reference(self, batch: Any) -> Tensor:
        return self._item(batch, "labels")

    def domain(self, batch: Any) -> str | None:
        label = batch.get("domain") if isinstance(batch, Mapping) else None
        return None if label is None else str(label)

    def trajectory_steps(self, item: Any) -> int | None:
        """A Poseidon-style rollout item has ``labels`` of shape ``(B, K, C', H, W)`` beside
        ``pixel_values`` ``(B, C, H, W)``: the true states 1…K lead times (``time``) apart. ``C' ≤ C``:
        a model may predict fewer channels than it reads
        (the rest are carried over, see :meth:`rollout_step`)."""
        inputs, labels = self._item(item, "pixel_values"), self._item(item, "labels")
        if (
            labels.ndim == inputs.ndim + 1
            and labels.shape[0] == inputs.shape[0]
            and labels.shape[3:] == inputs.shape[2:]
            and labels.shape[2] <= inputs.shape[1]
        ):
            return int(labels.shape[1])
        return None

    def rollout_step(self, sequence: Any, state: Tensor | None, step: int) -> Any:
        """Step ``step`` of a rollout item: the previous prediction (or ``pixel_values``) as input,
        the same ``time`` (the lead time of a step; with ``rollout_time="total"``, the item's ``time``
        divided by its K steps, as Poseidon's ``ar_steps`` rollout feeds it) and ``pixel_mask``,
        ``labels[:, step - 1]`` as target. A model that predicts ``C'`` of its ``C`` input channels gets
        the prediction followed by ``pixel_values[:, C':]`` (the channels it does not predict, carried
        over as Poseidon's trainer does)."""
        steps = self.trajectory_steps(sequence)
        if steps is None:
            raise ConfigError(
                "a rollout batch of the transformers adapter has labels shaped (B, K, C', H, W), C' ≤ C, "
                f"beside pixel_values (B, C, H, W); got labels {tuple(self._item(sequence, 'labels').shape)} "
                f"and pixel_values {tuple(self._item(sequence, 'pixel_values').shape)}"
            )
        if not 1 <= step <= steps:
            raise ConfigError(f"rollout step {step} is beyond the trajectory's {steps} steps")
        batch = dict(sequence)
        batch["labels"] = sequence["labels"][:, step - 1]
        if self.rollout_time is None and step == 1:
            warnings.warn(
                "a ScOT model's rollout with rollout_time unset: each item's time is read as every step's "
                "lead time ('step'); Poseidon's own rollouts (ar_steps) read it as the whole trajectory's "
                "('total'): set the adapter option rollout_time to the one your items follow",
                UserWarning,
                stacklevel=2,
            )
        if self.rollout_time == "total" and sequence.get("time") is not None:
            batch["time"] = sequence["time"] / steps
        if state is not None:
            inputs = sequence["pixel_values"]
            batch["pixel_values"] = (
                state
                if state.shape[1] == inputs.shape[1]
                else torch.cat([state, inputs[:, state.shape[1] :]], dim=1)
            )
        return batch

    def base_loss(self, prediction: Tensor, batch: Any) -> Tensor:
        if self.loss != "poseidon":
            return super().base_loss(prediction, batch)
        target = self.reference(batch)
        groups = self.groups(prediction.shape[1], batch)
        prediction = with_known(prediction, self.entry_mask(batch, target), target)
        return grouped_relative(prediction, target, groups, p=self.p or 1)

    def groups(self, channels: int, batch: Any) -> list[list[int]]:
        """The channel groups of the ``poseidon`` loss for a prediction with ``channels`` channels
        (masked channels stay in their groups: their error is zero)."""
        if self.channels is not None and len(self.channels) != channels:
            raise ConfigError(
                f"the prediction has {channels} channels, but the adapter names {len(self.channels)}: "
                f"{', '.join(self.channels)}"
            )
        if self.channel_groups is not None:
            if self.channel_groups[-1] != channels:
                raise ConfigError(
                    f"channel_groups end at {self.channel_groups[-1]}, but the prediction has {channels} "
                    "channels"
                )
            return bounded_groups(self.channel_groups)
        field = self.field(batch)
        return role_groups(field) if field is not None else [list(range(channels))]

    def entry_mask(self, batch: Any, like: Tensor) -> Tensor | None:
        """True where ``like`` (shaped as the labels) has no data: the ``masked`` channels and the
        batch's ``pixel_mask``; None when nothing is masked."""
        masks = []
        if isinstance(batch, Mapping) and batch.get("pixel_mask") is not None:
            masks.append(expand_mask(batch["pixel_mask"], like))
        if self.masked and self.channels is not None:
            flags = torch.tensor([name in self.masked for name in self.channels], device=like.device)
            masks.append(expand_mask(flags.expand(like.shape[0], -1), like))
        return functools.reduce(torch.logical_or, masks) if masks else None

    def masked_channels(self, batch: Any) -> tuple[str, ...]:
        """The ``masked`` channels plus those the batch's ``pixel_mask`` masks everywhere."""
        mask = batch.get("pixel_mask") if isinstance(batch, Mapping) else None
        if mask is None or self.channels is None:
            return self.masked
        target = self.reference(batch)
        everywhere = expand_mask(mask, target).transpose(0, 1).reshape(target.shape[1], -1).all(1).tolist()
        return self.masked + tuple(
            name for name, flag in zip(self.channels, everywhere) if flag and name not in self.masked
        )

    def blocks(self, model: nn.Module) -> list[str] | None:
        from transformers.models.swinv2.modeling_swinv2 import Swinv2Layer
        from transformers.models.vit.modeling_vit import ViTLayer

        layers = [
            name
            for name, module in model.named_modules()
            if isinstance(module, Swinv2Layer) or type(module).__name__ in BLOCK_CLASS_NAMES
        ]
        return layers or sibling_chain(model, ViTLayer)
