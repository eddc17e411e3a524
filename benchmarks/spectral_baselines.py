"""The two spectral baselines that are not per-mode low rank: mode truncation and Tucker.

Both act on a model prepared by its framework adapter (neuraloperator's ``SpectralConv`` layers
are ``FourierLayer`` modules, torch-harmonics' ``SpectralConvS2`` layers ``SphericalLayer`` modules,
each holding a ``ModeBank``), leave every other layer dense, and fill the same parameter budget as
the compressed models they are compared with (a complex weight counts as one parameter, as
``numel`` counts it):

- **mode truncation** keeps, in every spectral layer, the modes of lowest ``|k|`` (the usual way
  to shrink an FNO: fewer ``n_modes``; for an SFNO the lowest degrees ``l``), adding modes in that
  order while the budget allows; a dropped mode is a rank-0 ``LowRankLinear`` (zero output, no
  weights), as the allocator drops one;
- **Tucker** decomposes each layer's weight (``(in, out, *modes)`` for an FNO, ``(out, in,
  *modes)`` for an SFNO) by a truncated higher-order SVD
  refined by a few HOOI sweeps (what a TFNO user would reach for), the ranks chosen by a small
  search that keeps the closest approximation of the weights within the budget. The reconstructed weight
  is written back dense; its parameter count is the core plus the factors.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from safesvd_adapters.spherical import SphericalLayer
from safesvd_core import LowRankLinear
from safesvd_core.plugin import ModeBank

#: HOOI sweeps after the truncated HOSVD.
HOOI_SWEEPS = 3


def fourier_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The modules of ``model`` that hold a :class:`ModeBank` (``bank``), by name."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(getattr(module, "bank", None), ModeBank)
    }


def fourier_parameters(model: nn.Module) -> int:
    """Parameters of the Fourier banks (one per complex weight entry)."""
    return sum(p.numel() for layer in fourier_layers(model).values() for p in layer.bank.parameters())


def kept_outside(model: nn.Module) -> int:
    """Parameters outside the Fourier banks: kept dense by both baselines."""
    return sum(p.numel() for p in model.parameters()) - fourier_parameters(model)


def _frequency_order(shape: tuple[int, ...], real_last_axis: bool) -> Tensor:
    """``|k|`` of every mode of a ``SpectralConv`` grid (flattened row-major): centred axes after
    ``fftshift``, the last axis from 0 up for real data."""
    axes = []
    for axis, size in enumerate(shape):
        if real_last_axis and axis == len(shape) - 1:
            axes.append(torch.arange(size, dtype=torch.float64))
        else:
            axes.append(torch.arange(size, dtype=torch.float64) - size // 2)
    grids = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(grids).pow(2).sum(0).sqrt().reshape(-1)


def _mode_order(layer: nn.Module) -> Tensor:
    """Each mode's frequency: ``|k|`` for a Fourier layer, the degree ``l`` for a spherical one."""
    if isinstance(layer, SphericalLayer):
        degrees = torch.arange(layer.mode_shape[0], dtype=torch.float64)
        return degrees if len(layer.mode_shape) == 1 else degrees.repeat_interleave(layer.mode_shape[1])
    return _frequency_order(layer.mode_shape, not layer.complex_data)


def truncate_modes(model: nn.Module, budget: int) -> nn.Module:
    """A copy of prepared ``model`` keeping the lowest modes of every spectral layer within
    ``budget`` parameters of the whole model."""
    model = copy.deepcopy(model)
    layers = fourier_layers(model)
    fixed = kept_outside(model)
    keep: dict[str, set[int]] = {name: set() for name in layers}
    candidates = []
    for name, layer in layers.items():
        order = _mode_order(layer)
        candidates += [(float(order[index]), name, index) for index in range(layer.bank.modes)]
    spent = fixed
    for _, name, index in sorted(candidates):
        bank = layers[name].bank
        cost = bank.in_features * bank.out_features
        if spent + cost > budget:
            break
        keep[name].add(index)
        spent += cost
    for name, layer in layers.items():
        bank = layer.bank
        for index in range(bank.modes):
            if index not in keep[name]:
                bank.maps[index] = dropped_map(bank.maps[index].weight)
    return model


def dropped_map(weight: Tensor) -> LowRankLinear:
    """A rank-0 map of ``weight``'s shape, dtype and device: a truncated mode."""
    out_features, in_features = weight.shape
    return LowRankLinear.from_factors(
        weight.new_zeros(0, in_features), weight.new_zeros(out_features, 0), None
    )


def _unfold(tensor: Tensor, mode: int) -> Tensor:
    return tensor.movedim(mode, 0).reshape(tensor.shape[mode], -1)


def _leading_vectors(tensor: Tensor, mode: int, rank: int) -> Tensor:
    u, _, _ = torch.linalg.svd(_unfold(tensor, mode), full_matrices=False)
    return u[:, :rank]


def _project(tensor: Tensor, factors: list[Tensor], skip: int | None = None) -> Tensor:
    """``tensor`` multiplied along every mode but ``skip`` by the factor's conjugate transpose."""
    for mode, factor in enumerate(factors):
        if mode != skip:
            tensor = torch.tensordot(factor.mH, tensor.movedim(mode, 0), dims=1).movedim(0, mode)
    return tensor


def tucker(weight: Tensor, ranks: tuple[int, ...]) -> Tensor:
    """The rank-``ranks`` Tucker approximation of ``weight`` (HOSVD + :data:`HOOI_SWEEPS` HOOI sweeps)."""
    work = weight.to(torch.complex128 if weight.is_complex() else torch.float64)
    factors = [_leading_vectors(work, mode, rank) for mode, rank in enumerate(ranks)]
    for _ in range(HOOI_SWEEPS):
        for mode, rank in enumerate(ranks):
            factors[mode] = _leading_vectors(_project(work, factors, skip=mode), mode, rank)
    core = _project(work, factors)
    for mode, factor in enumerate(factors):
        core = torch.tensordot(factor, core.movedim(mode, 0), dims=1).movedim(0, mode)
    return core.to(weight.dtype)


def tucker_cost(shape: tuple[int, ...], ranks: tuple[int, ...]) -> int:
    """Parameters of a Tucker form: the core and one factor per mode."""
    return math.prod(ranks) + sum(size * rank for size, rank in zip(shape, ranks, strict=True))


def _ranks(shape: tuple[int, ...], channel_fraction: float, mode_fraction: float) -> tuple[int, ...]:
    """Tucker ranks: the channel sizes scaled by ``channel_fraction``, the mode sizes by ``mode_fraction``."""
    return tuple(
        max(1, min(size, math.ceil((channel_fraction if axis < 2 else mode_fraction) * size)))
        for axis, size in enumerate(shape)
    )


#: The shares of the mode axes' sizes the rank search tries (the channel share then fills the budget).
MODE_FRACTIONS = (1.0, 0.9, 0.75, 0.6, 0.5)


def tucker_compress(model: nn.Module, budget: int) -> tuple[nn.Module, int]:
    """A copy of prepared ``model`` whose Fourier weights are Tucker approximations within ``budget``,
    and its parameter count (the Tucker forms counted as stored: core plus factors).

    Every layer's ranks are the same shares of its sizes: for each share of the mode axes in
    :data:`MODE_FRACTIONS`, the largest channel share the budget allows; the pair whose
    approximations are closest to the weights (total squared relative error) is kept."""
    model = copy.deepcopy(model)
    layers = fourier_layers(model)
    fixed = kept_outside(model)
    weights = {name: layer.weight.detach() for name, layer in layers.items()}
    shapes = {name: tuple(weight.shape) for name, weight in weights.items()}

    def cost(channel: float, mode: float) -> int:
        return fixed + sum(tucker_cost(shape, _ranks(shape, channel, mode)) for shape in shapes.values())

    best: tuple[float, dict[str, Tensor], int] | None = None
    for mode in MODE_FRACTIONS:
        low, high = 0.0, 1.0
        for _ in range(30):
            middle = 0.5 * (low + high)
            low, high = (middle, high) if cost(middle, mode) <= budget else (low, middle)
        if cost(low, mode) > budget:
            continue
        approximations = {name: tucker(w, _ranks(shapes[name], low, mode)) for name, w in weights.items()}
        error = sum(
            float((approximations[name] - w).norm() ** 2 / w.norm() ** 2) for name, w in weights.items()
        )
        if best is None or error < best[0]:
            best = (error, approximations, cost(low, mode))
    if best is None:
        raise ValueError(f"no Tucker form fits {budget:,} parameters")
    for name, layer in layers.items():
        modes = layer.as_modes(best[1][name])
        with torch.no_grad():
            for index, weight in enumerate(modes):
                layer.bank.maps[index].weight.copy_(weight)
    return model, best[2]
