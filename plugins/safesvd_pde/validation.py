"""Checks shared by the physics losses: option validators, input shapes, finite results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import torch
from torch import Tensor

from safesvd_core._errors import ConfigError, NumericalError
from safesvd_core._field import FieldDescription


def check_pair(prediction: Tensor, reference: Tensor, field: FieldDescription) -> None:
    """Raise :class:`ConfigError` unless both are floating tensors of one shape that ``field`` describes."""
    for what, tensor in (("prediction", prediction), ("reference", reference)):
        if not isinstance(tensor, Tensor) or not tensor.is_floating_point():
            kind = tensor.dtype if isinstance(tensor, Tensor) else type(tensor).__name__
            raise ConfigError(f"{what}: expected a floating-point tensor, got {kind}")
    if prediction.shape != reference.shape:
        raise ConfigError(
            f"prediction and reference: expected the same shape, got {tuple(prediction.shape)} "
            f"and {tuple(reference.shape)}"
        )
    field.check_shape(prediction.shape)


def finite(value: Tensor, name: str) -> Tensor:
    """Return ``value``; raise :class:`NumericalError` if any entry is NaN or infinite."""
    if not bool(torch.isfinite(value).all()):
        raise NumericalError(
            f"physics loss {name!r} is not finite ({value.detach().cpu().flatten()[:4].tolist()}); "
            "the prediction or reference holds NaN/Inf or overflows this dtype"
        )
    return value


def one_of(*allowed: object) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """An attrs validator: the value must be one of ``allowed`` (``True`` is not ``1``)."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) != isinstance(allowed[0], bool) or value not in allowed:
            choices = ", ".join(map(repr, allowed))
            owner = getattr(type(instance), "name", type(instance).__name__)
            raise ConfigError(f"{owner} {attribute.name}: expected one of {choices}, got {value!r}")

    return check
