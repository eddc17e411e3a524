# examples/own_model/unet_model.py
"""A small U-Net (ConvNeXt blocks, skip connections): a model that is not a chain of blocks."""

import torch
import torch.nn.functional as F
from torch import nn


class ConvNeXtBlock(nn.Module):
    """Depthwise 7×7, GroupNorm, a pointwise MLP (two 1×1 convolutions), with a residual."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(width, width, 7, padding=3, padding_mode="circular", groups=width)
        self.norm = nn.GroupNorm(1, width)
        self.expand = nn.Conv2d(width, 4 * width, 1)
        self.contract = nn.Conv2d(4 * width, width, 1)

    def forward(self, x):
        return x + self.contract(F.gelu(self.expand(self.norm(self.mix(x)))))


class UNet(nn.Module):
    """Two levels down (a block, then a strided 2×2 convolution), a middle block, two levels up (a
    transposed convolution, the skip concatenated, a 1×1 merge, a block); predicts the increment."""

    def __init__(self, channels: int = 2, width: int = 16) -> None:
        super().__init__()
        widths = (width, 2 * width)
        self.lift = nn.Conv2d(channels, width, 3, padding=1, padding_mode="circular")
        self.encoder = nn.ModuleList(ConvNeXtBlock(w) for w in widths)
        self.down = nn.ModuleList(nn.Conv2d(w, 2 * w, 2, stride=2) for w in widths)
        self.middle = ConvNeXtBlock(4 * width)
        self.up = nn.ModuleList(nn.ConvTranspose2d(2 * w, w, 2, stride=2) for w in reversed(widths))
        self.merge = nn.ModuleList(nn.Conv2d(2 * w, w, 1) for w in reversed(widths))
        self.decoder = nn.ModuleList(ConvNeXtBlock(w) for w in reversed(widths))
        self.project = nn.Conv2d(width, channels, 1)

    def forward(self, x):
        h, skips = self.lift(x), []
        for block, down in zip(self.encoder, self.down):
            h = block(h)
            skips.append(h)
            h = down(h)
        h = self.middle(h)
        for up, merge, block in zip(self.up, self.merge, self.decoder):
            h = block(merge(torch.cat([up(h), skips.pop()], dim=1)))
        return x + self.project(h)
