"""torch-harmonics' spherical ``SpectralConvS2`` as a bank of per-degree linear maps
(:class:`SphericalLayer`).

The SFNO's spectral convolution (``torch_harmonics.examples.models``) takes the spherical harmonic
transform of its input, ``x̂[l, m]`` for degrees ``l < L`` and orders ``m < M``, multiplies it
by complex weights ``(out, in, L)`` (``"driscoll-healy"``: one ``out × in`` map per degree,
shared by the degree's orders) or ``(out, in, L, M)`` (``"diagonal"``: one per ``(l, m)``), and
transforms back. :class:`SphericalLayer` computes the same with the maps in a
:class:`~safesvd_core.plugin.ModeBank`: each degree (or ``(l, m)`` pair) a compressible layer.

Only the orders ``m ≤ l`` of a degree are coefficients (the associated Legendre functions vanish
for ``m > l``): during calibration each map is called on those rows alone, so that its statistics
are means over real coefficients and the allocator weighs degree ``l`` by its ``l + 1`` orders.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from safesvd_core.plugin import ConfigError, ModeBank

#: ``operator_type`` values the layer reproduces.
OPERATORS = ("driscoll-healy", "diagonal")


class SphericalLayer(nn.Module):
    """``SpectralConvS2``'s forward (``(output, residual)``) with its weights in :attr:`bank`: the
    forward and inverse transforms are the original's (shared with the model's other layers)."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        if conv.operator_type not in OPERATORS:
            raise ConfigError(
                f"SpectralConvS2 with operator_type={conv.operator_type!r}: only {OPERATORS} are "
                "banks of maps between channels that safesvd reproduces"
            )
        weight = conv.weight.detach()
        self.out_channels, self.in_channels = int(weight.shape[0]), int(weight.shape[1])
        self.operator_type = conv.operator_type
        self.mode_shape = tuple(int(size) for size in weight.shape[2:])
        self.forward_transform = conv.forward_transform
        self.inverse_transform = conv.inverse_transform
        self.scale_residual = bool(conv.scale_residual)
        self.bank = ModeBank(self.as_modes(weight).clone())
        self.bias = None if getattr(conv, "bias", None) is None else nn.Parameter(conv.bias.detach().clone())

    def as_modes(self, weight: Tensor) -> Tensor:
        """A weight in ``SpectralConvS2``'s layout ``(out, in, *modes)`` as the bank's ``(M, out, in)``."""
        return weight.reshape(self.out_channels, self.in_channels, -1).permute(2, 0, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        dtype = x.dtype
        x = x.float()
        residual = x
        with torch.autocast(device_type=x.device.type, enabled=False):
            coefficients = self.forward_transform(x)  # (B, in, L, M)
            if self.scale_residual:
                residual = self.inverse_transform(coefficients)
        mapped = self._map(coefficients)
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = self.inverse_transform(mapped)
        if self.bias is not None:
            y = y + self.bias
        return y.type(dtype), residual

    def _map(self, coefficients: Tensor) -> Tensor:
        """``(B, in, L, M)`` → ``(B, out, L, M)`` through the bank."""
        batch, _, degrees, orders = coefficients.shape
        if self.operator_type == "diagonal":
            flat = self.bank(coefficients.reshape(batch, self.in_channels, -1))
            return flat.reshape(batch, self.out_channels, degrees, orders)
        by_order = coefficients.permute(0, 3, 1, 2)  # (B, M, in, L): the orders are rows of a degree
        if not self.bank.hooked:
            return self.bank(by_order).permute(0, 2, 3, 1)
        out = coefficients.new_zeros(batch, orders, self.out_channels, degrees)
        for degree, layer in enumerate(self.bank.maps):  # calibration: degree l on its orders m ≤ l
            used = min(degree + 1, orders)
            out[:, :used, :, degree] = layer(by_order[:, :used, :, degree])
        return out.permute(0, 2, 3, 1)

    @property
    def weight(self) -> Tensor:
        """The weight in ``SpectralConvS2``'s layout ``(out, in, *modes)``."""
        return self.bank.weight.permute(1, 2, 0).reshape(
            self.out_channels, self.in_channels, *self.mode_shape
        )


def spherical_layer(conv: nn.Module) -> SphericalLayer:
    """The :class:`SphericalLayer` computing what ``conv`` (torch-harmonics' ``SpectralConvS2`` of
    the SFNO examples) computes."""
    return SphericalLayer(conv)


def spectral_conv_s2(layer: SphericalLayer, kind: type[nn.Module]) -> nn.Module:
    """A dense ``kind`` (the examples' ``SpectralConvS2``) of ``layer``'s configuration holding its
    weights."""
    conv = kind(
        layer.forward_transform,
        layer.inverse_transform,
        layer.in_channels,
        layer.out_channels,
        operator_type=layer.operator_type,
        bias=layer.bias is not None,
    )
    weight = layer.weight.detach()
    with torch.no_grad():
        conv.weight.copy_(weight.to(device=conv.weight.device, dtype=conv.weight.dtype))
        if layer.bias is not None:
            conv.bias.copy_(layer.bias)
    return conv.to(weight.device)
