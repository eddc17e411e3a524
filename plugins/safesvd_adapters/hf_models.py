"""Small operators built from HF transformers classes, with Poseidon's calling convention.

:class:`SmallScOT` is shaped like Poseidon's scOT (a Swinv2 U-Net): HF ``Swinv2Embeddings``, an HF
``Swinv2Encoder`` (stages joined by patch merging, ``reduction``), a decoder of HF ``Swinv2Stage``
with patch unmerging and skip connections, time-conditioned LayerNorms (``Linear(1, d)`` scale and
shift) and a ``ConvTranspose2d`` patch recovery. :class:`ViTOperator` wraps ``transformers.ViTModel``.
Both are called as ``model(pixel_values=..., time=..., pixel_mask=..., labels=...)`` (``pixel_mask``
``(batch, channels)`` or shaped like the labels) and return an object whose ``.output`` is the
predicted field ``(batch, out_channels, H, W)``.

Importing this module imports ``transformers`` (extra ``safesvd[transformers]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import Swinv2Config, Swinv2PreTrainedModel, ViTConfig, ViTModel
from transformers.models.swinv2.modeling_swinv2 import Swinv2Embeddings, Swinv2Encoder, Swinv2Stage
from transformers.utils import ModelOutput

from safesvd_core.plugin import ConfigError

from .poseidon import with_known
from .tokens import unpatchify


@dataclass
class OperatorOutput(ModelOutput):
    """The prediction, as Poseidon's ``ScOTOutput.output``."""

    output: torch.FloatTensor | None = None


class ConditionalLayerNorm(nn.Module):
    """LayerNorm whose scale and shift are ``Linear(1, d)`` maps of the lead time (Poseidon's)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Linear(1, dim)
        self.bias = nn.Linear(1, dim)

    def forward(self, x: Tensor, time: Tensor) -> Tensor:
        """``x``: ``(batch, ..., dim)`` (tokens, or a channels-last grid); ``time``: ``(batch,)``."""
        x = nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps)
        time = time.reshape(-1, 1).type_as(x)
        shape = (-1,) + (1,) * (x.ndim - 2) + (x.shape[-1],)  # (time batch, 1, ..., dim)
        return self.weight(time).reshape(shape) * x + self.bias(time).reshape(shape)


class PatchUnmerging(nn.Module):
    """Inverse of patch merging: ``(B, h w, d) → (B, 2h 2w, d / 2)`` (Poseidon's names)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.upsample = nn.Linear(dim, 2 * dim, bias=False)
        self.mixup = nn.Linear(dim // 2, dim // 2, bias=False)
        self.norm = nn.LayerNorm(dim // 2)

    def forward(self, x: Tensor, dimensions: tuple[int, int]) -> Tensor:
        batch, _, dim = x.shape
        height, width = dimensions
        x = self.upsample(x).reshape(batch, height, width, 2, 2, dim // 2)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, 4 * height * width, dim // 2)
        return self.mixup(self.norm(x))


class PatchRecovery(nn.Module):
    """Tokens back to the field: ``ConvTranspose2d`` by the patch size, then a 5×5 mix (Poseidon's)."""

    def __init__(self, dim: int, out_channels: int, patch: int) -> None:
        super().__init__()
        self.projection = nn.ConvTranspose2d(dim, out_channels, kernel_size=patch, stride=patch)
        self.mixup = nn.Conv2d(out_channels, out_channels, kernel_size=5, padding=2, bias=False)

    def forward(self, x: Tensor, dimensions: tuple[int, int]) -> Tensor:
        x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *dimensions)
        return self.mixup(self.projection(x))


def _time(time: Tensor | None, batch: int) -> Tensor:
    if time is None:
        raise ConfigError("this operator is time-conditioned: pass time=(batch,) lead times")
    return time.reshape(batch)


class SmallScOT(Swinv2PreTrainedModel):
    """A Poseidon-scOT-shaped Swinv2 U-Net operator; ``config.num_out_channels`` output channels."""

    def __init__(self, config: Swinv2Config) -> None:
        super().__init__(config)
        self.embeddings = Swinv2Embeddings(config)
        grid = self.embeddings.patch_grid
        self.embedding_norm = ConditionalLayerNorm(config.embed_dim)
        self.encoder = Swinv2Encoder(config, grid)
        levels = range(len(config.depths))
        self.decoder = nn.ModuleList(
            Swinv2Stage(
                config=config,
                dim=config.embed_dim * 2**i,
                input_resolution=(grid[0] // 2**i, grid[1] // 2**i),
                depth=config.depths[i],
                num_heads=config.num_heads[i],
                drop_path=[0.0] * config.depths[i],
                downsample=None,
            )
            for i in reversed(levels)
        )
        self.unmerging = nn.ModuleList(
            PatchUnmerging(config.embed_dim * 2**i) for i in reversed(levels) if i > 0
        )
        self.output_norm = ConditionalLayerNorm(config.embed_dim)
        self.patch_recovery = PatchRecovery(config.embed_dim, config.num_out_channels, config.patch_size)
        self.post_init()

    def forward(
        self,
        pixel_values: Tensor,
        time: Tensor | None = None,
        pixel_mask: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> OperatorOutput:
        time = _time(time, pixel_values.shape[0])
        hidden, dimensions = self.embeddings(pixel_values)
        hidden = self.embedding_norm(hidden, time)
        encoded = self.encoder(
            hidden,
            dimensions,
            output_hidden_states=True,
            output_hidden_states_before_downsampling=True,
            return_dict=True,
        )
        skips = encoded.hidden_states[1:]  # per level, before downsampling
        hidden = skips[-1]
        levels = len(self.decoder)
        for step, stage in enumerate(self.decoder):
            level = levels - 1 - step
            size = (dimensions[0] // 2**level, dimensions[1] // 2**level)
            if step > 0:
                hidden = self.unmerging[step - 1](hidden, (size[0] // 2, size[1] // 2)) + skips[level]
            hidden = stage(hidden, size)[0]
        prediction = self.patch_recovery(self.output_norm(hidden, time), dimensions)
        return OperatorOutput(output=with_known(prediction, pixel_mask, labels))


def small_scot(
    *,
    channels: int = 4,
    size: int = 16,
    patch: int = 2,
    embed_dim: int = 32,
    depths: tuple[int, ...] = (2, 2),
    heads: tuple[int, ...] = (2, 4),
    window: int = 4,
    mlp_ratio: float = 2.0,
) -> SmallScOT:
    """A randomly initialised :class:`SmallScOT` (eval mode) with ``channels`` in and out."""
    config = Swinv2Config(
        image_size=size,
        patch_size=patch,
        num_channels=channels,
        embed_dim=embed_dim,
        depths=list(depths),
        num_heads=list(heads),
        window_size=window,
        mlp_ratio=mlp_ratio,
        drop_path_rate=0.0,
    )
    config.num_out_channels = channels
    return SmallScOT(config).eval()


class ViTOperator(nn.Module):
    """``transformers.ViTModel`` as an operator: tokens, time FiLM (``Linear(1, d)``), per-patch
    linear recovery to ``out_channels``."""

    def __init__(self, config: ViTConfig, out_channels: int) -> None:
        super().__init__()
        self.vit = ViTModel(config, add_pooling_layer=False)
        self.patch = config.patch_size
        self.grid = config.image_size // config.patch_size
        self.out_channels = out_channels
        self.time_scale = nn.Linear(1, config.hidden_size)
        self.time_shift = nn.Linear(1, config.hidden_size)
        self.recovery = nn.Linear(config.hidden_size, out_channels * config.patch_size**2)

    def forward(
        self,
        pixel_values: Tensor,
        time: Tensor | None = None,
        pixel_mask: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> OperatorOutput:
        batch = pixel_values.shape[0]
        time = _time(time, batch).reshape(batch, 1).type_as(pixel_values)
        tokens = self.vit(pixel_values=pixel_values).last_hidden_state[:, 1:]  # drop [CLS]
        tokens = tokens * (1 + self.time_scale(time).unsqueeze(1)) + self.time_shift(time).unsqueeze(1)
        prediction = unpatchify(self.recovery(tokens), self.out_channels, self.patch, (self.grid, self.grid))
        return OperatorOutput(output=with_known(prediction, pixel_mask, labels))


def small_vit(
    *, channels: int = 4, size: int = 16, patch: int = 4, hidden: int = 48, depth: int = 2, heads: int = 4
) -> ViTOperator:
    """A randomly initialised :class:`ViTOperator` (eval mode) with ``channels`` in and out."""
    config = ViTConfig(
        image_size=size,
        patch_size=patch,
        num_channels=channels,
        hidden_size=hidden,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
    )
    return ViTOperator(config, channels).eval()
