"""A structural stand-in for Poseidon's ``ScOT`` (``scOT.model.ScOT``), written from scratch.

Poseidon's repository has no licence, so none of its code is here: this module reproduces what
safesvd relies on, from the published architecture (a Swinv2 U-Net with time-conditioned
LayerNorms and ConvNeXt blocks on the skip connections, Herde et al., 2024): the module names and
nesting, the classes that safesvd recognises by name (``ScOTLayer``, ``ConvNeXtBlock``), ScOT's
config fields, its calling convention ``model(pixel_values=..., time=..., pixel_mask=...,
labels=...)`` with ``(batch, channels)`` masks, and its loss. Where Poseidon uses HF Swinv2 pieces
(attention, MLP, window partitioning), so does this module; it runs under transformers 4.x and 5.x.

::

    embeddings.patch_embeddings.projection   Conv2d(C, d, patch, stride patch)
    embeddings.norm                          LayerNorm, time-conditioned: Linear(1, d) weight and bias
    encoder.layers.{i}.blocks.{j}            ScOTLayer: attention (HF Swinv2Attention), layernorm_before,
                                             intermediate, output (HF Swinv2 MLP), layernorm_after
    encoder.layers.{i}.downsample            patch merging: reduction Linear(4d, 2d), norm
    residual_blocks.{i}.{j}                  ConvNeXtBlock on level i's skip: dwconv 7×7, norm, pwconv1,
                                             pwconv2
    decoder.layers.{k}.blocks.{j}            ScOTLayer, level L − 1 − k
    decoder.layers.{k}.upsample              patch unmerging: upsample Linear(d, 2d), norm,
                                             mixup Linear(d/2, d/2)
    patch_recovery.projection, .mixup        ConvTranspose2d(d, C_out, patch), Conv2d 5×5

Importing this module imports ``transformers`` (extra ``safesvd[transformers]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PretrainedConfig, Swinv2PreTrainedModel
from transformers.models.swinv2.modeling_swinv2 import (
    Swinv2Attention,
    Swinv2DropPath,
    Swinv2Intermediate,
    Swinv2Output,
    window_partition,
    window_reverse,
)
from transformers.utils import ModelOutput

from safesvd_core.plugin import ConfigError

from .hf_models import ConditionalLayerNorm
from .poseidon import GROUPS_FIELD, boundaries, scot_loss, with_known

_COMMON = {
    "num_heads": (3, 6, 12, 24),
    "skip_connections": (2, 2, 2, 0),
    "window_size": 16,
    "patch_size": 4,
    "mlp_ratio": 4.0,
    "image_size": 128,
}
#: Poseidon's model sizes (its training script's table), as ``ScOTLikeConfig`` fields.
POSEIDON_SHAPES: dict[str, dict[str, Any]] = {
    "T": {**_COMMON, "embed_dim": 48, "depths": (4, 4, 4, 4)},
    "B": {**_COMMON, "embed_dim": 96, "depths": (8, 8, 8, 8)},
    "L": {**_COMMON, "embed_dim": 192, "depths": (8, 8, 8, 8)},
}


class ScOTLikeConfig(PretrainedConfig):
    """ScOT's config fields; defaults: Poseidon-T, 4 channels ([ρ | u, v | p]) in and out, 128²."""

    model_type = "scot-like"

    def __init__(
        self,
        image_size: int = 128,
        patch_size: int = 4,
        num_channels: int = 4,
        num_out_channels: int = 4,
        embed_dim: int = 48,
        depths: Any = (4, 4, 4, 4),
        num_heads: Any = (3, 6, 12, 24),
        skip_connections: Any = (2, 2, 2, 0),
        window_size: int = 16,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        drop_path_rate: float = 0.0,
        hidden_act: str = "gelu",
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-5,
        p: int = 1,
        channel_slice_list_normalized_loss: Any = (0, 1, 3, 4),
        residual_model: str = "convnext",
        use_conditioning: bool = True,
        learn_residual: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image_size, self.patch_size, self.embed_dim = image_size, patch_size, embed_dim
        self.num_channels, self.num_out_channels = num_channels, num_out_channels
        self.depths, self.num_heads, self.skip_connections = (
            list(depths),
            list(num_heads),
            list(skip_connections),
        )
        self.num_layers = len(self.depths)
        self.window_size, self.mlp_ratio, self.qkv_bias, self.hidden_act = (
            window_size,
            mlp_ratio,
            qkv_bias,
            hidden_act,
        )
        self.hidden_dropout_prob, self.attention_probs_dropout_prob = (
            hidden_dropout_prob,
            attention_probs_dropout_prob,
        )
        self.drop_path_rate, self.initializer_range, self.layer_norm_eps = (
            drop_path_rate,
            initializer_range,
            layer_norm_eps,
        )
        self.p, self.residual_model = p, residual_model
        setattr(
            self,
            GROUPS_FIELD,
            None if channel_slice_list_normalized_loss is None else list(channel_slice_list_normalized_loss),
        )
        self.use_conditioning = use_conditioning
        self.learn_residual = learn_residual and use_conditioning


def _check(config: ScOTLikeConfig) -> None:
    levels = len(config.depths)
    if config.residual_model != "convnext":
        raise ConfigError(
            f"residual_model {config.residual_model!r}: the stand-in models Poseidon's 'convnext' skips only"
        )
    if len(config.num_heads) != levels or len(config.skip_connections) < levels:
        raise ConfigError(
            f"depths {config.depths}, num_heads {config.num_heads} and skip_connections "
            f"{config.skip_connections} must give one entry per level"
        )
    if config.image_size % (config.patch_size * 2 ** (levels - 1)):
        raise ConfigError(
            f"image_size {config.image_size} must be a multiple of patch_size × 2^(levels − 1) "
            f"= {config.patch_size * 2 ** (levels - 1)}"
        )
    groups = boundaries(getattr(config, GROUPS_FIELD))
    if groups is not None and groups[-1] != config.num_out_channels:
        raise ConfigError(
            f"{GROUPS_FIELD} {list(groups)} must end at num_out_channels = {config.num_out_channels}"
        )


class TimeFreeLayerNorm(nn.LayerNorm):
    """A LayerNorm called as ``(x, time)`` that ignores the time (ScOT without conditioning)."""

    def forward(self, x: Tensor, time: Tensor | None = None) -> Tensor:  # type: ignore[override]
        return super().forward(x)


def _norm(config: ScOTLikeConfig, dim: int) -> nn.Module:
    kind = ConditionalLayerNorm if config.use_conditioning else TimeFreeLayerNorm
    return kind(dim, eps=config.layer_norm_eps)


def _shift_mask(height: int, width: int, window: int, shift: int, like: Tensor) -> Tensor:
    """Additive attention mask of shifted windows: −100 between tokens that the cyclic shift brought
    together from different regions, 0 elsewhere; ``(windows, window², window²)``."""

    def regions(size: int) -> Tensor:
        index = torch.arange(size, device=like.device)
        return (index >= size - window).long() + (index >= size - shift).long()

    label = (regions(height)[:, None] * 3 + regions(width)[None, :]).to(like.dtype)
    tiles = window_partition(label[None, :, :, None], window).reshape(-1, window * window)
    apart = tiles[:, None, :] != tiles[:, :, None]
    return torch.zeros(apart.shape, dtype=like.dtype, device=like.device).masked_fill(apart, -100.0)


class ScOTLayer(nn.Module):
    """A Swinv2 block with time-conditioned post-norms, called as ``(hidden, dims, time, head_mask,
    output_attentions, always_partition)`` and returning a tuple, as Poseidon's ``ScOTLayer``."""

    def __init__(
        self,
        config: ScOTLikeConfig,
        dim: int,
        resolution: tuple[int, int],
        num_heads: int,
        shifted: bool,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        side = min(resolution)
        self.window_size = min(config.window_size, side)
        self.shift_size = config.window_size // 2 if shifted and side > config.window_size else 0
        self.attention = Swinv2Attention(
            config, dim=dim, num_heads=num_heads, window_size=self.window_size, pretrained_window_size=(0, 0)
        )
        self.layernorm_before = _norm(config, dim)
        self.drop_path = Swinv2DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.intermediate = Swinv2Intermediate(config, dim)
        self.output = Swinv2Output(config, dim)
        self.layernorm_after = _norm(config, dim)

    def forward(
        self,
        hidden: Tensor,
        dims: tuple[int, int],
        time: Tensor | None,
        head_mask: Tensor | None = None,
        output_attentions: bool = False,
        always_partition: bool = False,
    ) -> tuple[Tensor, ...]:
        if head_mask is not None:
            raise ConfigError("the ScOT stand-in takes no head_mask")
        (height, width), window, shift = dims, self.window_size, self.shift_size
        batch, _, channels = hidden.shape
        grid = nn.functional.pad(
            hidden.view(batch, height, width, channels), (0, 0, 0, -width % window, 0, -height % window)
        )
        padded = grid.shape[1:3]
        if shift:
            grid = torch.roll(grid, (-shift, -shift), (1, 2))
        mask = _shift_mask(*padded, window, shift, grid) if shift else None
        attended = self.attention(
            window_partition(grid, window).view(-1, window * window, channels),
            mask,
            output_attentions=output_attentions,
        )
        grid = window_reverse(attended[0].view(-1, window, window, channels), window, *padded)
        if shift:
            grid = torch.roll(grid, (shift, shift), (1, 2))
        attention = grid[:, :height, :width].reshape(batch, height * width, channels)
        hidden = hidden + self.drop_path(self.layernorm_before(attention, time))
        hidden = hidden + self.drop_path(self.layernorm_after(self.output(self.intermediate(hidden)), time))
        return (hidden, attended[1]) if output_attentions else (hidden,)


class ConvNeXtBlock(nn.Module):
    """A ConvNeXt block on a skip connection's tokens ``(B, h w, d)`` (square grid), called as
    ``(x, time)``: depthwise 7×7, conditional LayerNorm, ``pwconv1`` → GELU → ``pwconv2``, layer scale."""

    def __init__(self, config: ScOTLikeConfig, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = _norm(config, dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.weight = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: Tensor, time: Tensor | None) -> Tensor:
        batch, tokens, dim = x.shape
        side = math.isqrt(tokens)
        y = self.dwconv(x.transpose(1, 2).reshape(batch, dim, side, side)).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y, time))))
        return x + (self.weight * y).reshape(batch, tokens, dim)


class PatchMerging(nn.Module):
    """``(B, h w, d) → (B, h/2 w/2, 2d)``: each 2×2 neighbourhood concatenated,
    then ``reduction``, ``norm``."""

    def __init__(self, config: ScOTLikeConfig, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = _norm(config, 2 * dim)

    def forward(self, x: Tensor, dims: tuple[int, int], time: Tensor | None) -> Tensor:
        batch, _, dim = x.shape
        grid = x.view(batch, *dims, dim)
        grid = nn.functional.pad(grid, (0, 0, 0, dims[1] % 2, 0, dims[0] % 2))
        parts = [grid[:, i::2, j::2] for j in (0, 1) for i in (0, 1)]
        return self.norm(self.reduction(torch.cat(parts, -1).reshape(batch, -1, 4 * dim)), time)


class PatchUnmerging(nn.Module):
    """``(B, h w, d) → (B, 2h 2w, d/2)``: ``upsample`` to four tokens each, ``norm``, then ``mixup``."""

    def __init__(self, config: ScOTLikeConfig, dim: int) -> None:
        super().__init__()
        self.upsample = nn.Linear(dim, 2 * dim, bias=False)
        self.mixup = nn.Linear(dim // 2, dim // 2, bias=False)
        self.norm = _norm(config, dim // 2)

    def forward(
        self, x: Tensor, dims: tuple[int, int], out_dims: tuple[int, int], time: Tensor | None
    ) -> Tensor:
        batch, _, dim = x.shape
        grid = self.upsample(x).reshape(batch, *dims, 2, 2, dim // 2).permute(0, 1, 3, 2, 4, 5)
        grid = grid.reshape(batch, 2 * dims[0], 2 * dims[1], dim // 2)[:, : out_dims[0], : out_dims[1]]
        return self.mixup(self.norm(grid.reshape(batch, -1, dim // 2), time))


class Stage(nn.Module):
    """One level of the U-Net: ``blocks`` (ScOTLayers, shifted every other one), then an optional
    ``downsample`` (encoder, fed the blocks' output plus the stage's input) or ``upsample`` (decoder)."""

    def __init__(self, config: ScOTLikeConfig, level: int, drop_paths: list[float], encoder: bool) -> None:
        super().__init__()
        dim, grid = config.embed_dim * 2**level, config.image_size // config.patch_size // 2**level
        depth, heads, last = config.depths[level], config.num_heads[level], len(config.depths) - 1
        self.dims = (grid, grid)
        order = range(depth) if encoder else reversed(range(depth))
        self.blocks = nn.ModuleList(
            ScOTLayer(config, dim, self.dims, heads, shifted=i % 2 == 1, drop_path=rate)
            for i, rate in zip(order, drop_paths)
        )
        if encoder:
            self.downsample = PatchMerging(config, dim) if level < last else None
        else:
            self.upsample = PatchUnmerging(config, dim) if level > 0 else None

    def forward(self, hidden: Tensor, time: Tensor | None) -> tuple[Tensor, Tensor]:
        """The stage's output (resampled) and its blocks' output (the skip, before resampling)."""
        inputs = hidden
        for block in self.blocks:
            hidden = block(hidden, self.dims, time)[0]
        if getattr(self, "downsample", None) is not None:
            return self.downsample(hidden + inputs, self.dims, time), hidden
        if getattr(self, "upsample", None) is not None:
            return self.upsample(hidden, self.dims, (2 * self.dims[0], 2 * self.dims[1]), time), hidden
        return hidden, hidden


class Coder(nn.Module):
    """The encoder (levels 0 … L − 1) or the decoder (levels L − 1 … 0), as ``layers``."""

    def __init__(self, config: ScOTLikeConfig, encoder: bool) -> None:
        super().__init__()
        total = sum(config.depths)
        rates = [
            config.drop_path_rate * i / max(2 * total - 1, 1) for i in range(2 * total)
        ]  # stochastic depth
        rates = rates[:total] if encoder else rates[total:]
        levels = range(len(config.depths)) if encoder else reversed(range(len(config.depths)))
        starts = [sum(config.depths[:level]) for level in range(len(config.depths))]
        self.layers = nn.ModuleList(
            Stage(config, level, rates[starts[level] : starts[level] + config.depths[level]], encoder)
            for level in levels
        )


class Embeddings(nn.Module):
    """``patch_embeddings.projection`` (a patchifying Conv2d), then a time-conditioned ``norm``."""

    def __init__(self, config: ScOTLikeConfig) -> None:
        super().__init__()
        self.patch_embeddings = nn.Module()
        self.patch_embeddings.projection = nn.Conv2d(
            config.num_channels, config.embed_dim, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.norm = _norm(config, config.embed_dim)

    def forward(self, pixel_values: Tensor, time: Tensor | None) -> Tensor:
        return self.norm(self.patch_embeddings.projection(pixel_values).flatten(2).transpose(1, 2), time)


class PatchRecovery(nn.Module):
    """Tokens back to the field: ``projection`` (ConvTranspose2d by the patch size), then a 5×5 ``mixup``."""

    def __init__(self, config: ScOTLikeConfig) -> None:
        super().__init__()
        self.grid = config.image_size // config.patch_size
        self.projection = nn.ConvTranspose2d(
            config.embed_dim, config.num_out_channels, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.mixup = nn.Conv2d(
            config.num_out_channels, config.num_out_channels, kernel_size=5, padding=2, bias=False
        )

    def forward(self, hidden: Tensor) -> Tensor:
        return self.mixup(
            self.projection(hidden.transpose(1, 2).reshape(hidden.shape[0], -1, self.grid, self.grid))
        )


@dataclass
class ScOTLikeOutput(ModelOutput):
    """As Poseidon's ``ScOTOutput``: the training ``loss`` (with ``labels``) and the predicted field
    ``output``."""

    loss: torch.FloatTensor | None = None
    output: torch.FloatTensor | None = None


class ScOTLike(Swinv2PreTrainedModel):
    """The stand-in: ScOT's structure, names, calling convention and loss (module docstring)."""

    config_class = ScOTLikeConfig

    def __init__(self, config: ScOTLikeConfig) -> None:
        _check(config)
        super().__init__(config)
        self.embeddings = Embeddings(config)
        self.encoder = Coder(config, encoder=True)
        self.decoder = Coder(config, encoder=False)
        self.patch_recovery = PatchRecovery(config)
        self.residual_blocks = nn.ModuleList(
            nn.ModuleList(ConvNeXtBlock(config, config.embed_dim * 2**level) for _ in range(count))
            if count
            else nn.ModuleList([nn.Identity()])
            for level, count in enumerate(config.skip_connections)
        )
        self.post_init()

    def forward(
        self,
        pixel_values: Tensor,
        time: Tensor | None = None,
        pixel_mask: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> ScOTLikeOutput:
        config = self.config
        if pixel_values.shape[-1] != config.image_size or pixel_values.shape[-2] != config.image_size:
            raise ConfigError(
                f"the stand-in runs at {config.image_size}² (config.image_size); got "
                f"{tuple(pixel_values.shape)}"
            )
        if config.use_conditioning and time is None:
            raise ConfigError(
                "this ScOT is time-conditioned (config.use_conditioning): pass time=(batch,) lead times"
            )
        hidden = self.embeddings(pixel_values, time)
        skips = []
        for stage in self.encoder.layers:
            hidden, skip = stage(hidden, time)
            skips.append(skip)
        for level, blocks in enumerate(self.residual_blocks):
            for block in blocks:
                skips[level] = skips[level] if isinstance(block, nn.Identity) else block(skips[level], time)
        hidden = skips[-1]
        for step, stage in enumerate(self.decoder.layers):
            if step:
                hidden = hidden + skips[len(skips) - 1 - step]
            hidden = stage(hidden, time)[0]
        prediction = self.patch_recovery(hidden)
        if config.learn_residual:
            prediction = prediction + pixel_values[:, : config.num_out_channels]
        prediction = with_known(prediction, pixel_mask, labels)
        loss = (
            None
            if labels is None
            else scot_loss(prediction, labels, boundaries(getattr(config, GROUPS_FIELD)), config.p)
        )
        return ScOTLikeOutput(loss=loss, output=prediction)


def scot_like(size: str = "T", **overrides: Any) -> ScOTLike:
    """A randomly initialised stand-in (eval mode) at Poseidon-``size``'s shapes (``POSEIDON_SHAPES``),
    with ``overrides`` of any config field."""
    if size not in POSEIDON_SHAPES:
        raise ConfigError(f"size must be one of {', '.join(POSEIDON_SHAPES)}, got {size!r}")
    return ScOTLike(ScOTLikeConfig(**{**POSEIDON_SHAPES[size], **overrides})).eval()


def poseidon_t_like(**overrides: Any) -> ScOTLike:
    """Poseidon-T's structure (four levels of depth 4, 3/6/12/24 heads, ConvNeXt skips 2/2/2/0,
    patch 4) at a tiny width and grid: embedding 12, 64² inputs, window 8."""
    return scot_like("T", **{"embed_dim": 12, "image_size": 64, "window_size": 8, **overrides})
