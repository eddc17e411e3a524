"""``LowRankLinear``: ``y = A (B x) + b``, the drop-in replacement of a compressed ``nn.Linear``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._errors import ConfigError


class LowRankLinear(nn.Module):
    """Two factors and the original bias: ``first`` maps ``n → k`` (``B``), ``second`` ``k → m`` (``A``).

    ``channel_dim`` is the axis it maps: ``-1`` for a replaced ``nn.Linear``, ``1`` for a replaced
    1×1 convolution (channels-first).
    """

    def __init__(
        self, in_features: int, out_features: int, rank: int, *, bias: bool = True, channel_dim: int = -1,
        device: torch.device | str | None = None, dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= rank <= min(in_features, out_features):
            raise ConfigError(f"rank must lie in [1, {min(in_features, out_features)}], got {rank}")
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.channel_dim = channel_dim
        self.first = nn.Linear(in_features, rank, bias=False, device=device, dtype=dtype)
        self.second = nn.Linear(rank, out_features, bias=bias, device=device, dtype=dtype)

    @classmethod
    def from_factors(cls, first: Tensor, second: Tensor, bias: Tensor | None, *, channel_dim: int = -1) -> LowRankLinear:
        """Build from ``first`` = ``B`` (``k × n``), ``second`` = ``A`` (``m × k``) and the bias (or ``None``)."""
        rank, in_features = first.shape
        if second.shape[1] != rank:
            raise ConfigError(f"factor shapes do not chain: first (B) {tuple(first.shape)}, second (A) {tuple(second.shape)}")
        module = cls(int(in_features), int(second.shape[0]), int(rank), bias=bias is not None,
                     channel_dim=channel_dim, device=first.device, dtype=first.dtype)
        with torch.no_grad():
            module.first.weight.copy_(first)
            module.second.weight.copy_(second)
            if bias is not None:
                module.second.bias.copy_(bias)
        return module

    @property
    def weight(self) -> Tensor:
        """The dense product ``A @ B`` (computed, not stored)."""
        return self.second.weight @ self.first.weight

    @property
    def bias(self) -> Tensor | None:
        """The kept bias of the original layer."""
        return self.second.bias

    def forward(self, x: Tensor) -> Tensor:
        if self.channel_dim == -1:
            return self.second(self.first(x))
        return self.second(self.first(x.movedim(self.channel_dim, -1))).movedim(-1, self.channel_dim)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, bias={self.bias is not None}, channel_dim={self.channel_dim}"
