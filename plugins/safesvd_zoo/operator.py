"""A small ViT-style neural operator: patchify a field, transformer blocks, unpatchify.

Each block's attention uses separate ``query``/``key``/``value``/``output`` linears (the layer
names of Poseidon/Swinv2) and its MLP ``intermediate``/``output_dense``: all compressible.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from safesvd_core.plugin import ConfigError, positive_int


@attrs.frozen(kw_only=True)
class OperatorConfig:
    """Shape of a :class:`FieldTransformer`."""

    channels: int = attrs.field(default=2, validator=positive_int)
    size: int = attrs.field(default=32, validator=positive_int)
    patch: int = attrs.field(default=4, validator=positive_int)
    width: int = attrs.field(default=96, validator=positive_int)
    depth: int = attrs.field(default=4, validator=positive_int)
    heads: int = attrs.field(default=4, validator=positive_int)
    mlp_ratio: int = attrs.field(default=2, validator=positive_int)

    def __attrs_post_init__(self) -> None:
        if self.size % self.patch:
            raise ConfigError(f"size ({self.size}) must be a multiple of patch ({self.patch})")
        if self.width % self.heads:
            raise ConfigError(f"width ({self.width}) must be a multiple of heads ({self.heads})")

    def to_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


class Block(nn.Module):
    """Pre-norm transformer block with explicit projection layers."""

    def __init__(self, width: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.output = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.intermediate = nn.Linear(width, hidden)
        self.output_dense = nn.Linear(hidden, width)

    def _split(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        return x.view(batch, tokens, self.heads, width // self.heads).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        q, k, v = self._split(self.query(h)), self._split(self.key(h)), self._split(self.value(h))
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape_as(x)
        x = x + self.output(attended)
        return x + self.output_dense(F.gelu(self.intermediate(self.norm2(x))))


class FieldTransformer(nn.Module):
    """``(batch, channels, size, size)`` → same shape, predicting the field a lead time later."""

    def __init__(self, config: OperatorConfig) -> None:
        super().__init__()
        self.config = config
        patch_dim = config.channels * config.patch**2
        tokens = (config.size // config.patch) ** 2
        self.embed = nn.Linear(patch_dim, config.width)
        self.position = nn.Parameter(torch.zeros(1, tokens, config.width))
        self.blocks = nn.ModuleList(
            Block(config.width, config.heads, config.mlp_ratio * config.width) for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, patch_dim)
        nn.init.normal_(self.position, std=0.02)

    def forward(self, field: Tensor) -> Tensor:
        c, p = self.config.channels, self.config.patch
        batch, _, size, _ = field.shape
        grid = size // p
        patches = (
            field.reshape(batch, c, grid, p, grid, p)
            .permute(0, 2, 4, 1, 3, 5)
            .reshape(batch, grid * grid, c * p * p)
        )
        x = self.embed(patches) + self.position
        for block in self.blocks:
            x = block(x)
        out = self.head(self.norm(x)).reshape(batch, grid, grid, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return field + out.reshape(batch, c, size, size)

    def block_names(self) -> list[str]:
        """The transformer blocks, a sequential chain."""
        return [f"blocks.{index}" for index in range(len(self.blocks))]
