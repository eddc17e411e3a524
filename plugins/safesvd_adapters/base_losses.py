"""Base (training) losses by name: the criteria PDE foundation models are trained with."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

BaseLoss = Callable[[Tensor, Tensor], Tensor]

_TINY = 1e-12


def mse(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean squared error."""
    return torch.mean((prediction - target) ** 2)


def l1(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error."""
    return torch.mean(torch.abs(prediction - target))


def _per_sample_relative(prediction: Tensor, target: Tensor, p: int) -> Tensor:
    diff = (prediction - target).flatten(1)
    ref = target.flatten(1)
    return (diff.norm(p=p, dim=1) / ref.norm(p=p, dim=1).clamp_min(_TINY)).mean()


def relative_l1(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-sample ``‖p − t‖₁ / ‖t‖₁``, averaged (Poseidon's criterion, one channel group)."""
    return _per_sample_relative(prediction, target, 1)


def relative_l2(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-sample ``‖p − t‖₂ / ‖t‖₂``, averaged (DPOT's criterion)."""
    return _per_sample_relative(prediction, target, 2)


def relative_mse(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-sample ``‖p − t‖² / ‖t‖²``, averaged (MPP's normalised MSE)."""
    squared_error = (prediction - target).flatten(1).pow(2).sum(1)
    return torch.mean(squared_error / target.flatten(1).pow(2).sum(1).clamp_min(_TINY))


BASE_LOSSES: dict[str, BaseLoss] = {
    "mse": mse,
    "l1": l1,
    "relative-l1": relative_l1,
    "relative-l2": relative_l2,
    "relative-mse": relative_mse,
}
