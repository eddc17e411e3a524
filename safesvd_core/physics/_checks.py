"""Checks every physics loss makes of its inputs and its value: floating tensors of one shape that the
field describes (a :class:`ConfigError` otherwise: the physics-loss conformance suite requires it),
and a finite result (a :class:`NumericalError` otherwise)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import ConfigError, NumericalError
from .._field import FieldDescription


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
