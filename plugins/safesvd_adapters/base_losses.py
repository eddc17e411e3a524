"""Base (training) losses by name: the criteria PDE foundation models are trained with."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from safesvd_core.plugin import ConfigError

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


def _h1_weights(grid: Sequence[int], device: torch.device) -> Tensor:
    """``1 + |k|²`` on the real-FFT grid of ``grid`` (integer wavenumbers: a domain of length 2π)."""
    axes = [torch.fft.fftfreq(n, 1.0 / n, device=device) for n in grid[:-1]]
    axes.append(torch.fft.rfftfreq(grid[-1], 1.0 / grid[-1], device=device))
    return 1.0 + sum(axis.pow(2) for axis in torch.meshgrid(*axes, indexing="ij"))


def relative_h1(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-sample ``‖p − t‖_{H¹} / ‖t‖_{H¹}``, averaged: the Sobolev norm of the fields
    ``(batch, channels, *grid)`` from their Fourier coefficients, weights ``1 + |k|²`` (neuraloperator's
    usual training loss for Fourier operators; periodic grids, where the spectral derivative is exact)."""
    dims = tuple(range(2, target.ndim))
    if not dims:
        raise ConfigError(
            f"relative-h1 needs fields (batch, channels, *grid), got shape {tuple(target.shape)}"
        )
    weights = _h1_weights(target.shape[2:], target.device)
    error = (torch.fft.rfftn(prediction - target, dim=dims).abs().pow(2) * weights).flatten(1).sum(1)
    norm = (torch.fft.rfftn(target, dim=dims).abs().pow(2) * weights).flatten(1).sum(1)
    return (error / norm.clamp_min(_TINY)).sqrt().mean()


def channel_nmse(prediction: Tensor, target: Tensor) -> Tensor:
    """MSE over the grid divided by ``mean(target²) + 1e-7``, per sample and channel, averaged
    (MPP's / The Well's normalised MSE). Fields are ``(batch, channels, *grid)``."""
    grid = tuple(range(2, target.ndim))
    error = (prediction - target).pow(2).mean(grid)
    return torch.mean(error / (target.pow(2).mean(grid) + 1e-7))


def grouped_relative(
    prediction: Tensor, target: Tensor, groups: Sequence[Sequence[int]], p: int = 1
) -> Tensor:
    """Poseidon's criterion: per channel group, ``mean|pred − t|^p / (mean|t|^p + 1e-10)`` over the
    batch, then the mean over groups. ``groups`` lists channel indices (dim 1) per group."""
    if p not in (1, 2):
        raise ConfigError(f"p must be 1 or 2, got {p!r}")
    terms = []
    for group in groups:
        index = torch.as_tensor(list(group), device=target.device)
        pred, ref = prediction.index_select(1, index), target.index_select(1, index)
        terms.append((pred - ref).abs().pow(p).mean() / (ref.abs().pow(p).mean() + 1e-10))
    if not terms:
        raise ConfigError("grouped_relative needs at least one channel group")
    return torch.stack(terms).mean()


BASE_LOSSES: dict[str, BaseLoss] = {
    "mse": mse,
    "l1": l1,
    "relative-l1": relative_l1,
    "relative-l2": relative_l2,
    "relative-mse": relative_mse,
    "relative-h1": relative_h1,
    "nmse": channel_nmse,
}
