"""The generic adapter: any ``nn.Module`` called as ``model(input)`` (or ``model(*input)``,
``model(**input)``) on ``(input, target)`` batches, the input and target tensors or structures
of them (``structured.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
from torch import Tensor, nn

from safesvd_core import FieldDescription
from safesvd_core.plugin import ConfigError, ModelAdapter, is_compressible, one_of

from . import attention, structured
from .base_losses import BaseLoss
from .framework import SelectingAdapter, TupleBatches, check_loss, resolve_loss
from .selection import CONDITIONING, Selection, pattern_tuple, select
from .spectral import restore_spectral, rewrite_spectral, spectral_blocks

_RAW_ATTENTION = (
    "projection of an nn.MultiheadAttention left as it is (separate kdim/vdim, add_bias_kv, "
    "add_zero_attn, or rewrite_attention=False): torch uses its weight directly, not the module"
)


def _field_description(value: Any) -> Any:
    """A dict (``FieldDescription.to_dict()``, a TOML table) turned into a :class:`FieldDescription`;
    anything else as it is (the adapter passes it to the physics terms)."""
    return FieldDescription.from_dict(value) if isinstance(value, Mapping) else value


def _leaf_weights(value: Any) -> dict[str, float] | None:
    """``{place: weight}`` with finite weights ≥ 0, or None."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"leaf_weights must be a dict {{place: weight}}, got {type(value).__name__}")
    weights = {}
    for place, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise ConfigError(f"leaf_weights[{place!r}] must be a finite number >= 0, got {weight!r}")
        weights[str(place)] = float(weight)
    return weights


@attrs.frozen(kw_only=True)
class GenericAdapter(TupleBatches, SelectingAdapter, ModelAdapter):
    """Batches are ``(input, target)`` / ``(input, target, domain)`` tuples or dicts with keys
    ``input``, ``target`` (and optionally ``domain``). Every ``nn.Linear`` and 1×1 convolution is
    compressible unless ``include``/``exclude`` glob patterns say otherwise. ``block_names`` names
    a sequential chain of blocks for staged compression (for ``nn.TransformerEncoder`` models:
    :func:`safesvd_adapters.attention.transformer_layer_names`); ``field_description`` describes
    the fields for physics losses (a :class:`FieldDescription` or its dict: this adapter takes no
    ``channels``/``roles`` options of its own).

    With ``rewrite_attention`` (default), packed ``nn.MultiheadAttention`` modules are rewritten
    (on private copies) into :class:`~safesvd_adapters.attention.ExplicitMultiheadAttention`, so
    that their ``in_proj`` (``d → 3d``) and ``out_proj`` are compressible. With
    ``rewrite_spectral`` (default), the spectral layers of neuraloperator and torch-harmonics become
    banks of per-mode maps (:mod:`safesvd_adapters.spectral`), each mode a compressible layer, and
    without ``block_names`` each spectral layer is one stage.

    Inputs and targets may be structures of tensors (dicts, dataclasses, namedtuples, tuples,
    objects holding tensors; metadata passes through). ``call`` says how the input is passed:
    ``"single"`` (default) ``model(input)``, ``"args"`` ``model(*input)``, ``"kwargs"``
    ``model(**input)``. A loss name is summed over the target's floating tensor places, each
    weighted by ``leaf_weights`` (default 1); a callable ``loss`` takes the structures as they are.

    Conditioning layers (adaptive-norm modulation, time and lead-time embeddings, by name:
    :data:`~safesvd_adapters.selection.CONDITIONING`) are skipped, with that reason, unless
    ``conditioning=True``.
    """

    name: ClassVar[str] = "generic"

    loss: str | BaseLoss = attrs.field(default="mse", validator=lambda i, a, v: check_loss(v))
    include: tuple[str, ...] = attrs.field(default=("*",), converter=pattern_tuple)
    exclude: tuple[str, ...] = attrs.field(default=(), converter=pattern_tuple)
    block_names: tuple[str, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(pattern_tuple)
    )
    field_description: FieldDescription | None = attrs.field(default=None, converter=_field_description)
    rewrite_attention: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    rewrite_spectral: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    call: str = attrs.field(default="single", validator=one_of(structured.CALLS))
    leaf_weights: Mapping[str, float] | None = attrs.field(default=None, converter=_leaf_weights)
    conditioning: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    @leaf_weights.validator
    def _weights_need_a_loss_name(self, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None and not isinstance(self.loss, str):
            raise ConfigError("leaf_weights weight a loss name's terms; a callable loss weighs places itself")

    @property
    def rewrites_modules(self) -> bool:
        return self.rewrite_attention or self.rewrite_spectral

    def prepare(self, model: nn.Module) -> nn.Module:
        if self.rewrite_attention:
            model = attention.rewrite_attention(model)
        return rewrite_spectral(model) if self.rewrite_spectral else model

    def restore(self, model: nn.Module) -> nn.Module:
        if self.rewrite_spectral:
            model = restore_spectral(model)
        return attention.restore_attention(model) if self.rewrite_attention else model

    def predict(self, model: nn.Module, batch: Any) -> Any:
        return structured.call_model(model, self._parts(batch)[0], self.call)

    def base_loss(self, prediction: Any, batch: Any) -> Tensor:
        target = self.reference(batch)
        loss = resolve_loss(self.loss)
        tensors = isinstance(prediction, Tensor) and isinstance(target, Tensor)
        if isinstance(self.loss, str) and (self.leaf_weights is not None or not tensors):
            return structured.structured_loss(loss, prediction, target, self.leaf_weights)
        return loss(prediction, target)

    def field(self, batch: Any) -> FieldDescription | None:
        return self.field_description

    def selection(self, model: nn.Module) -> Selection:
        raw = {
            f"{name}.{child}" if name else child: _RAW_ATTENTION
            for name, module in model.named_modules()
            if isinstance(module, nn.MultiheadAttention)
            for child, _ in module.named_children()
        }
        rules = () if self.conditioning else (CONDITIONING,)
        return select(model, rules, include=self.include, exclude=self.exclude, extra=raw)

    def blocks(self, model: nn.Module) -> list[str] | None:
        if self.block_names is None:
            return spectral_blocks(model) or None
        for name in self.block_names:
            try:
                module = model.get_submodule(name)
            except AttributeError:
                raise ConfigError(
                    f"block {name!r} named in block_names is not a submodule of the model"
                ) from None
            if is_compressible(module):
                raise ConfigError(
                    f"block {name!r} named in block_names is a single layer ({type(module).__name__}), not a "
                    "block: name the modules that contain layers (e.g. a transformer layer)"
                )
        return list(self.block_names)
