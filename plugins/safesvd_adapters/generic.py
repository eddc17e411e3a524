"""The generic adapter: any ``nn.Module`` called as ``model(input)`` on ``(input, target)`` batches."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs
from torch import Tensor, nn

from safesvd_core._errors import ConfigError
from safesvd_core import FieldDescription
from safesvd_core._interfaces import ModelAdapter
from safesvd_core._layers import is_compressible

from .base_losses import BASE_LOSSES, BaseLoss


def _loss(value: str | BaseLoss) -> str | BaseLoss:
    if isinstance(value, str) and value not in BASE_LOSSES:
        raise ConfigError(f"loss must be a callable or one of {', '.join(sorted(BASE_LOSSES))}, got {value!r}")
    if not isinstance(value, str) and not callable(value):
        raise ConfigError(f"loss must be a callable (prediction, target) -> Tensor or a name, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class GenericAdapter(ModelAdapter):
    """Batches are ``(input, target)`` / ``(input, target, domain)`` tuples or dicts with keys
    ``input``, ``target`` (and optionally ``domain``). Every ``nn.Linear`` and 1×1 convolution is
    compressible unless
    ``include``/``exclude`` glob patterns say otherwise. ``block_names`` names a sequential chain
    of blocks for staged compression; ``field_description`` describes the fields for physics losses.
    """

    name: ClassVar[str] = "generic"

    loss: str | BaseLoss = attrs.field(default="mse", validator=lambda i, a, v: _loss(v))
    include: tuple[str, ...] = attrs.field(default=("*",), converter=tuple)
    exclude: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    block_names: tuple[str, ...] | None = attrs.field(default=None, converter=lambda v: None if v is None else tuple(v))
    field_description: FieldDescription | None = None

    def _parts(self, batch: Any) -> tuple[Any, Tensor, str | None]:
        if isinstance(batch, Mapping):
            missing = {"input", "target"} - batch.keys()
            if missing:
                raise ConfigError(f"a dict batch needs the keys 'input' and 'target'; missing {sorted(missing)}")
            return batch["input"], batch["target"], batch.get("domain")
        if isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
            return batch[0], batch[1], (batch[2] if len(batch) == 3 else None)
        raise ConfigError(
            f"the generic adapter expects (input, target) tuples or {{'input', 'target'}} dicts, got {type(batch).__name__}"
        )

    def predict(self, model: nn.Module, batch: Any) -> Tensor:
        return model(self._parts(batch)[0])

    def reference(self, batch: Any) -> Tensor:
        return self._parts(batch)[1]

    def base_loss(self, prediction: Tensor, batch: Any) -> Tensor:
        loss: Callable[[Tensor, Tensor], Tensor] = BASE_LOSSES[self.loss] if isinstance(self.loss, str) else self.loss
        return loss(prediction, self.reference(batch))

    def domain(self, batch: Any) -> str | None:
        label = self._parts(batch)[2]
        return None if label is None else str(label)

    def field(self, batch: Any) -> FieldDescription | None:
        return self.field_description

    def compressible_layers(self, model: nn.Module) -> list[str]:
        return [
            name for name, module in model.named_modules()
            if is_compressible(module)
            and any(fnmatch.fnmatchcase(name, pattern) for pattern in self.include)
            and not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.exclude)
        ]

    def blocks(self, model: nn.Module) -> list[str] | None:
        if self.block_names is None:
            return None
        for name in self.block_names:
            try:
                model.get_submodule(name)
            except AttributeError:
                raise ConfigError(f"block {name!r} named in block_names is not a submodule of the model") from None
        return list(self.block_names)
