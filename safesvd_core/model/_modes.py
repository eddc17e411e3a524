"""``ModeBank``: a bank of linear maps, one per retained mode of a spectral layer.

A Fourier layer multiplies each retained Fourier mode ``k`` of its input by its own complex matrix:
``ŷ_k = W_k x̂_k``. The bank holds one complex ``nn.Linear`` (no bias) per mode, ``maps.0`` …
``maps.{M-1}``, so that every mode is a compressible layer of its own: statistics, Fisher, the
whitened solve and the greedy allocation treat a mode like any ``nn.Linear``, and a factored mode
becomes a complex :class:`~safesvd_core.LowRankLinear`. The allocator may give a mode rank 0
(:func:`in_mode_bank`): a ``LowRankLinear`` without weights, the mode truncated.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._errors import ConfigError
from ._lowrank import LowRankLinear


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


def _hooked(module: nn.Module) -> bool:
    """Whether ``module`` has forward hooks (a capture during calibration)."""
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _kind(module: nn.Module) -> str:
    """How a map computes: ``"dense"``, ``"factored"``, ``"dropped"``, or ``"own"`` (anything else,
    e.g. a map with a bias: it runs itself)."""
    if isinstance(module, LowRankLinear) and module.bias is None and module.channel_dim == -1:
        return "dropped" if module.rank == 0 else "factored"
    if type(module) is nn.Linear and module.bias is None:
        return "dense"
    return "own"


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
        self.maps = nn.ModuleList()
        for weight in weights:
            layer = nn.Linear(in_features, out_features, bias=False, device=weight.device, dtype=weight.dtype)
            with torch.no_grad():
                layer.weight.copy_(weight)
            self.maps.append(layer)

    @property
    def modes(self) -> int:
        return len(self.maps)

    @property
    def hooked(self) -> bool:
        """Whether a map has forward hooks (calibration captures it): a layer that feeds each mode
        only its own rows (:class:`ModeBank` calls each map on what it is given) then calls the maps
        one by one."""
        return any(_hooked(layer) for layer in self.maps)

    def forward(self, coefficients: Tensor, modes: Tensor | None = None) -> Tensor:
        """``coefficients`` ``(batch, in, M')`` of the modes ``modes`` (indices into the bank; default
        all ``M``) → ``(batch, out, M')``."""
        indices = range(self.modes) if modes is None else [int(index) for index in modes]
        if coefficients.shape[-1] != len(indices) or coefficients.shape[-2] != self.in_features:
            raise ConfigError(
                f"a mode bank of {self.in_features} input channels got coefficients of shape "
                f"{tuple(coefficients.shape)} for {len(indices)} modes"
            )
        if any(_hooked(self.maps[index]) for index in indices):  # calibration: every map seen on its own
            outputs = [self.maps[index](coefficients[..., slot]) for slot, index in enumerate(indices)]
            return torch.stack(outputs, dim=-1)
        return self._grouped(coefficients, indices)

    def _grouped(self, coefficients: Tensor, indices: Sequence[int]) -> Tensor:
        """The same output with the maps of one kind applied together: the dense ones in one batched
        product, the factored ones in two (their factors zero-padded to the largest rank)."""
        groups: dict[str, list[int]] = {}
        for slot, index in enumerate(indices):
            groups.setdefault(_kind(self.maps[index]), []).append(slot)
        out = coefficients.new_zeros(*coefficients.shape[:-2], self.out_features, len(indices))
        for kind, slots in groups.items():
            maps = [self.maps[indices[slot]] for slot in slots]
            if kind == "own":  # maps of other kinds: as each computes itself
                for slot, layer in zip(slots, maps, strict=True):
                    out[..., slot] = layer(coefficients[..., slot])
                continue
            if kind == "dropped":
                continue
            inputs = coefficients[..., slots]  # (..., in, G)
            if kind == "dense":
                weight = torch.stack([layer.weight for layer in maps])  # (G, out, in)
                out[..., slots] = torch.einsum("goi,...ig->...og", weight, inputs)
                continue
            rank = max(layer.rank for layer in maps)
            first = torch.stack([F.pad(layer.first.weight, (0, 0, 0, rank - layer.rank)) for layer in maps])
            second = torch.stack([F.pad(layer.second.weight, (0, rank - layer.rank)) for layer in maps])
            middle = torch.einsum("gki,...ig->...kg", first, inputs)  # (G, k, in) zero-padded
            out[..., slots] = torch.einsum("gok,...kg->...og", second, middle)
        return out

    @property
    def weight(self) -> Tensor:
        """The maps' weights stacked as ``(M, out, in)`` (a dropped mode: zeros)."""
        return torch.stack([layer.weight for layer in self.maps])
