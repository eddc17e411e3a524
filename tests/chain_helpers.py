"""Small models and data for stage tests: a chain of blocks, random calibration pairs."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class BlockChain(nn.Module):
    """``blocks`` applied in turn, held as ``blocks.0``, ``blocks.1``, ..."""

    def __init__(self, blocks: Iterable[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def block_names(self) -> list[str]:
        return [f"blocks.{index}" for index in range(len(self.blocks))]


def random_pairs(count: int, rows: int, width: int, seed: int, out: int | None = None):
    """``count`` pairs of ``(rows, width)`` inputs and ``(rows, out or width)`` targets, seeded."""
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(rows, width, generator=generator), torch.randn(rows, out or width, generator=generator))
        for _ in range(count)
    ]
