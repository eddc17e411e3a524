# examples/own_model/my_operator.py
"""A small conv + MLP operator for 2-D fields: u(t) ↦ u(t + Δt) on a periodic grid."""

import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    """Depthwise 3×3 mixing, then a pointwise MLP (two 1×1 convolutions), with a skip."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(width, width, 3, padding=1, padding_mode="circular", groups=width)
        self.norm = nn.GroupNorm(1, width)
        self.expand = nn.Conv2d(width, 2 * width, 1)
        self.contract = nn.Conv2d(2 * width, width, 1)

    def forward(self, x):
        return x + self.contract(F.gelu(self.expand(self.norm(self.mix(x)))))


class ConvMLPOperator(nn.Module):
    """A 3×3 lift, ``depth`` blocks and a 1×1 projection; predicts the increment."""

    def __init__(self, channels: int = 2, width: int = 32, depth: int = 4) -> None:
        super().__init__()
        self.lift = nn.Conv2d(channels, width, 3, padding=1, padding_mode="circular")
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.project = nn.Conv2d(width, channels, 1)

    def forward(self, x):
        h = self.lift(x)
        for block in self.blocks:
            h = block(h)
        return x + self.project(h)


def build(width: int = 32, depth: int = 4) -> ConvMLPOperator:
    """The factory a safesvd config names: ``factory = "my_operator:build"``."""
    return ConvMLPOperator(width=width, depth=depth)
