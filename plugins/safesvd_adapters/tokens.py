"""Patch tokens back to a field, shared by the ViT-style operators."""

from __future__ import annotations

from torch import Tensor


def unpatchify(patches: Tensor, channels: int, patch: int, grid: tuple[int, int]) -> Tensor:
    """``(B, h w, channels p²)`` per-patch values → ``(B, channels, h p, w p)``."""
    batch = patches.shape[0]
    height, width = grid
    patches = patches.reshape(batch, height, width, channels, patch, patch)
    return patches.permute(0, 3, 1, 4, 2, 5).reshape(batch, channels, height * patch, width * patch)
