"""``LowRankLinear``: ``y = A (B x) + b``, the drop-in replacement of a compressed ``nn.Linear``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._errors import ConfigError
from ..linalg._balance import balanced


class LowRankLinear(nn.Module):
    """Two factors and the original bias: ``first`` maps ``n → k`` (``B``), ``second`` ``k → m`` (``A``).

    ``channel_dim`` is the axis it maps: ``-1`` for a replaced ``nn.Linear``, ``1`` for a replaced
    1×1 convolution (channels-first). ``rank=0`` keeps no weights and outputs the bias alone (zeros
    without one): a Fourier mode the allocator dropped.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        *,
        bias: bool = True,
        channel_dim: int = -1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= rank <= min(in_features, out_features):
            raise ConfigError(f"rank must lie in [0, {min(in_features, out_features)}], got {rank}")
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.channel_dim = channel_dim
        self.first = nn.Linear(in_features, rank, bias=False, device=device, dtype=dtype)
        self.second = nn.Linear(rank, out_features, bias=bias, device=device, dtype=dtype)

    @classmethod
    def from_factors(
        cls,
        first: Tensor,
        second: Tensor,
        bias: Tensor | None,
        *,
        channel_dim: int = -1,
        balance: bool = True,
    ) -> LowRankLinear:
        """Build from ``first`` = ``B`` (``k × n``), ``second`` = ``A`` (``m × k``) and the bias (or
        ``None``).

        With ``balance`` (the default) the factors are re-split as ``√S Vᵀ`` and ``U √S`` of their
        product (:func:`~safesvd_core.balanced`): the same map, well scaled for training and half
        precision. ``balance=False`` stores them as given.
        """
        rank, in_features = first.shape
        if second.ndim != 2 or second.shape[1] != rank:
            raise ConfigError(
                f"factor shapes do not chain: first (B) {tuple(first.shape)}, "
                f"second (A) {tuple(second.shape)}"
            )
        if balance:
            first, second = balanced(first, second)
        module = cls(
            int(in_features),
            int(second.shape[0]),
            int(rank),
            bias=bias is not None,
            channel_dim=channel_dim,
            device=first.device,
            dtype=first.dtype,
        )
        with torch.no_grad():
            module.first.weight.copy_(first)
            module.second.weight.copy_(second)
            if bias is not None:
                module.second.bias.copy_(bias)
        return module

    def balance_(self) -> LowRankLinear:
        """Re-split the factors in place as :meth:`from_factors` does with ``balance``; returns ``self``."""
        with torch.no_grad():
            first, second = balanced(self.first.weight, self.second.weight)
            self.first.weight.copy_(first)
            self.second.weight.copy_(second)
        return self

    @property
    def weight(self) -> Tensor:
        """The dense product ``A @ B`` (computed, not stored)."""
        return self.second.weight @ self.first.weight

    @property
    def bias(self) -> Tensor | None:
        """The kept bias of the original layer."""
        return self.second.bias

    @property
    def in_channels(self) -> int:
        """``in_features`` under a convolution's name: code that reads a replaced 1×1 convolution's
        ``in_channels`` (e.g. neuraloperator's skip connections) keeps working."""
        return self.in_features

    @property
    def out_channels(self) -> int:
        """``out_features`` under a convolution's name (see :attr:`in_channels`)."""
        return self.out_features

    def forward(self, x: Tensor) -> Tensor:
        """Two matrix products, the bias fused into the second; no copy of the input: on the last
        axis two ``linear`` calls (an ``addmm`` for 2-D input), on a channel axis (1×1 convolutions,
        channels first) two batched ``matmul`` over the flattened grid."""
        first, second, bias = self.first.weight, self.second.weight, self.second.bias
        if self.channel_dim == -1:
            return F.linear(F.linear(x, first), second, bias)
        flat = x.flatten(2) if x.dim() > 2 else x.unsqueeze(-1)  # (B, n, grid)
        y = torch.matmul(second, torch.matmul(first, flat))
        if bias is not None:
            y = y + bias.unsqueeze(-1)
        return y.reshape((*x.shape[:1], self.out_features, *x.shape[2:]))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
            f"bias={self.bias is not None}, channel_dim={self.channel_dim}"
        )
