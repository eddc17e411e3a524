"""Checks shared by the physics losses: input shapes and finite results."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import Tensor

from safesvd_core.plugin import ConfigError, FieldDescription, NumericalError


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


def is_finite_non_negative(value: Any) -> bool:
    """Whether ``value`` is a real number (not a bool), finite and ≥ 0: a weight or an epsilon."""
    return (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and value >= 0
    )
