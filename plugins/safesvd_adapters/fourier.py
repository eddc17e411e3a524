"""neuraloperator's ``SpectralConv`` as a bank of per-mode linear maps (:class:`FourierLayer`).

``SpectralConv`` keeps its Fourier weights as one complex tensor ``(in, out, *modes)`` (or a
factorized one, TFNO) and contracts it with the input's retained Fourier coefficients in one
einsum. :class:`FourierLayer` computes the same output with the weights as a
:class:`~safesvd_core.plugin.ModeBank`: one complex ``in → out`` map per retained mode, each a
compressible layer. :func:`fourier_layer` builds it from a ``SpectralConv`` (a factorized weight is
densified on entry) and :func:`spectral_conv` writes it back (the dense export).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from safesvd_core.plugin import ConfigError, ModeBank

#: ``fno_block_precision`` values the layer reproduces (the others run the contraction in half).
PRECISIONS = ("full",)


class FourierLayer(nn.Module):
    """``SpectralConv``'s forward with the per-mode weights in :attr:`bank` (mode grid ``mode_shape``,
    flattened in row-major order): FFT, the retained block of modes, ``ŷ_k = W_k x̂_k``, inverse FFT,
    bias."""

    def __init__(self, conv: nn.Module, weight: Tensor) -> None:
        super().__init__()
        self.in_channels, self.out_channels = int(weight.shape[0]), int(weight.shape[1])
        self.order = int(conv.order)
        self.mode_shape = tuple(int(size) for size in weight.shape[2:])
        self.max_n_modes = list(conv.max_n_modes)
        self.complex_data = bool(conv.complex_data)
        self.fft_norm = conv.fft_norm
        self.resolution_scaling_factor = conv.resolution_scaling_factor
        self.bank = ModeBank(self.as_modes(weight).detach().clone())
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())

    def as_modes(self, weight: Tensor) -> Tensor:
        """A weight in ``SpectralConv``'s layout ``(in, out, *modes)`` as the bank's ``(M, out, in)``."""
        return weight.reshape(self.in_channels, self.out_channels, -1).permute(2, 1, 0)

    def _output_sizes(self, sizes: list[int], output_shape: Any) -> list[int]:
        """The grid the layer outputs for an input grid ``sizes``: ``output_shape`` when given, else
        ``sizes`` scaled by ``resolution_scaling_factor`` (as ``SpectralConv``)."""
        if output_shape is not None:
            return list(output_shape)
        if self.resolution_scaling_factor is None:
            return sizes
        return [round(s * r) for s, r in zip(sizes, self.resolution_scaling_factor, strict=True)]

    def transform(self, x: Tensor, output_shape: Any = None) -> Tensor:
        """The skip path's resampling, as ``SpectralConv.transform``."""
        sizes = list(x.shape[2:])
        target = self._output_sizes(sizes, output_shape)
        if target == sizes:
            return x
        from neuralop.layers.resample import resample  # the adapter requires neuralop

        return resample(x, 1.0, list(range(2, x.ndim)), output_shape=target)

    def forward(self, x: Tensor, output_shape: Any = None) -> Tensor:
        batch, _, *sizes = x.shape
        fft_size = list(sizes)
        if not self.complex_data:
            fft_size[-1] = fft_size[-1] // 2 + 1
        dims = list(range(-self.order, 0))
        if self.complex_data:
            coefficients, shifted = torch.fft.fftn(x, norm=self.fft_norm, dim=dims), dims
        else:
            coefficients, shifted = torch.fft.rfftn(x, norm=self.fft_norm, dim=dims), dims[:-1]
        if self.order > 1:
            coefficients = torch.fft.fftshift(coefficients, dim=shifted)
        weight_slices, input_slices = self._slices(fft_size)
        kept = torch.arange(math.prod(self.mode_shape), device=x.device).reshape(self.mode_shape)
        kept = kept[tuple(weight_slices)]
        block = coefficients[(slice(None), slice(None), *input_slices)]
        mapped = self.bank(block.reshape(batch, self.in_channels, -1), kept.reshape(-1))
        out = torch.zeros(batch, self.out_channels, *fft_size, device=x.device, dtype=mapped.dtype)
        out[(slice(None), slice(None), *input_slices)] = mapped.reshape(batch, self.out_channels, *kept.shape)
        sizes = self._output_sizes(sizes, output_shape)
        if self.order > 1:
            out = torch.fft.fftshift(out, dim=dims[:-1])
        if self.complex_data:
            y = torch.fft.ifftn(out, s=sizes, dim=dims, norm=self.fft_norm)
        else:
            y = torch.fft.irfftn(out, s=sizes, dim=dims, norm=self.fft_norm)
        return y if self.bias is None else y + self.bias

    def _slices(self, fft_size: list[int]) -> tuple[list[slice], list[slice]]:
        """The retained block: which weights (modes of the grid) and which input coefficients, as
        ``SpectralConv`` picks them (fewer modes than kept at a coarse resolution: the central ones)."""
        starts = [
            max_modes - min(size, kept)
            for size, kept, max_modes in zip(fft_size, self.mode_shape, self.max_n_modes, strict=True)
        ]
        centred = starts if self.complex_data else starts[:-1]
        weight = [slice(start // 2, -start // 2) if start else slice(start, None) for start in centred]
        if not self.complex_data:
            weight.append(slice(None, -starts[-1]) if starts[-1] else slice(None))
        shape = [len(range(*s.indices(size))) for s, size in zip(weight, self.mode_shape, strict=True)]
        inputs = []
        for all_modes, kept in zip(fft_size, shape, strict=True):
            centre = all_modes // 2
            inputs.append(slice(centre - kept // 2, centre + kept // 2 + kept % 2))
        inputs[-1] = slice(None, shape[-1]) if shape[-1] < fft_size[-1] else slice(None)
        return weight, inputs

    @property
    def weight(self) -> Tensor:
        """The Fourier weight in ``SpectralConv``'s layout ``(in, out, *modes)``."""
        return self.bank.weight.permute(2, 1, 0).reshape(
            self.in_channels, self.out_channels, *self.mode_shape
        )


def dense_weight(conv: nn.Module) -> Tensor:
    """``conv``'s Fourier weight as a dense complex tensor (a factorized one, TFNO, multiplied out)."""
    weight = conv.weight
    dense = weight.to_tensor() if hasattr(weight, "to_tensor") else weight
    return torch.as_tensor(dense).detach()


def fourier_layer(conv: nn.Module) -> FourierLayer:
    """The :class:`FourierLayer` computing what ``conv`` (a neuraloperator ``SpectralConv``) computes."""
    if getattr(conv, "separable", False):
        raise ConfigError("a separable SpectralConv has one weight per channel, not a map between channels")
    if conv.fno_block_precision not in PRECISIONS:
        raise ConfigError(
            f"SpectralConv with fno_block_precision={conv.fno_block_precision!r}: only {PRECISIONS} is "
            "reproduced; build the model with fno_block_precision='full' to compress it"
        )
    return FourierLayer(conv, dense_weight(conv))


def spectral_conv(layer: FourierLayer, kind: type[nn.Module]) -> nn.Module:
    """A dense ``kind`` (neuraloperator's ``SpectralConv``) of ``layer``'s configuration holding its
    weights (a factorized TFNO layer comes back dense)."""
    n_modes = list(layer.mode_shape)
    if not layer.complex_data:
        n_modes[-1] = 2 * (n_modes[-1] - 1)  # SpectralConv keeps n // 2 + 1 of the last axis
    conv = kind(
        layer.in_channels,
        layer.out_channels,
        n_modes,
        complex_data=layer.complex_data,
        max_n_modes=list(layer.max_n_modes),
        bias=layer.bias is not None,
        fft_norm=layer.fft_norm,
        resolution_scaling_factor=layer.resolution_scaling_factor,
    )
    weight = layer.weight.detach()
    with torch.no_grad():
        target = conv.weight.tensor if hasattr(conv.weight, "tensor") else conv.weight
        target.copy_(weight.to(device=target.device, dtype=target.dtype))
        if layer.bias is not None:
            conv.bias.copy_(layer.bias)
    return conv.to(weight.device)
