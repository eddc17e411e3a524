"""``ModeBank``: a bank of linear maps, one per retained mode of a spectral layer.

A Fourier layer multiplies each retained Fourier mode ``k`` of its input by its own complex matrix:
``ŷ_k = W_k x̂_k``. The bank holds one complex ``nn.Linear`` (no bias) per mode, ``maps.0`` …
``maps.{M-1}``, so that every mode is a compressible layer of its own: statistics, Fisher, the
whitened solve and the greedy allocation treat a mode like any ``nn.Linear``, and a factored mode
becomes a complex :class:`~safesvd_core.LowRankLinear`. The allocator may give a mode rank 0
(:func:`in_mode_bank`): a ``LowRankLinear`` without weights, the mode truncated. :class:`DroppedMode`
is the same for code that truncates modes itself (the mode-truncation baseline).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._errors import ConfigError


def in_mode_bank(model: nn.Module, name: str) -> bool:
    """Whether layer ``name`` of ``model`` is a mode of a :class:`ModeBank` (``….maps.<k>``): the
    allocator may drop it (rank 0)."""
    maps, _, _ = name.rpartition(".")
    bank, _, last = maps.rpartition(".")
    if last != "maps" or not bank:
        return False
    try:
        return isinstance(model.get_submodule(bank), ModeBank)
    except AttributeError:
        return False


class DroppedMode(nn.Module):
    """A truncated mode: maps ``in_features`` coefficients to ``out_features`` zeros, no weights."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x: Tensor) -> Tensor:
        return x.new_zeros(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class ModeBank(nn.Module):
    """Per-mode linear maps over coefficients ``(batch, in, M)`` → ``(batch, out, M)``.

    Built from weights ``(M, out, in)`` (complex or real). :attr:`weight` gives them back stacked,
    whatever each map has become (dense, factored or dropped).
    """

    def __init__(self, weights: Tensor) -> None:
        super().__init__()
        if weights.ndim != 3:
            raise ConfigError(
                f"a mode bank needs weights of shape (modes, out, in), got {tuple(weights.shape)}"
            )
        out_features, in_features = int(weights.shape[1]), int(weights.shape[2])
        self.in_features, self.out_features = in_features, out_features
        # the bank's dtype and device, whatever its maps become (moved by ``.to`` with them)
        self.register_buffer("_like", weights.new_zeros(0), persistent=False)
        self.maps = nn.ModuleList()
        for weight in weights:
            layer = nn.Linear(in_features, out_features, bias=False, device=weight.device, dtype=weight.dtype)
            with torch.no_grad():
                layer.weight.copy_(weight)
            self.maps.append(layer)

    @property
    def modes(self) -> int:
        return len(self.maps)

    def forward(self, coefficients: Tensor, modes: Tensor | None = None) -> Tensor:
        """``coefficients`` ``(batch, in, M')`` of the modes ``modes`` (indices into the bank; default
        all ``M``) → ``(batch, out, M')``."""
        indices = range(self.modes) if modes is None else [int(index) for index in modes]
        if coefficients.shape[-1] != len(indices) or coefficients.shape[-2] != self.in_features:
            raise ConfigError(
                f"a mode bank of {self.in_features} input channels got coefficients of shape "
                f"{tuple(coefficients.shape)} for {len(indices)} modes"
            )
        outputs = [self.maps[index](coefficients[..., slot]) for slot, index in enumerate(indices)]
        return torch.stack(outputs, dim=-1)

    @property
    def weight(self) -> Tensor:
        """The maps' weights stacked as ``(M, out, in)`` (a dropped mode: zeros)."""
        stacked = []
        for layer in self.maps:
            if isinstance(layer, DroppedMode):
                stacked.append(self._like.new_zeros(self.out_features, self.in_features))
            else:
                stacked.append(layer.weight)
        return torch.stack(stacked)
