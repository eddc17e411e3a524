"""The ``timm`` adapter: operators built on ``timm``'s ``VisionTransformer``.

Batches are ``(input, target[, domain])`` tuples or ``{'input', 'target'}`` dicts of fields
``(B, C, H, W)``; the model is called as ``model(input)``. ``timm`` is imported only when the
adapter or :class:`TimmViTOperator` is created (extra ``safesvd[timm]``).
"""

from __future__ import annotations

from typing import ClassVar

import attrs
from torch import Tensor, nn

from safesvd_core.plugin import ModelAdapter

from .framework import FieldAdapter, TupleBatches, require
from .selection import NORMALISATION, POSITION_BIAS, TIME_CONDITIONING, embedding, recovery
from .tokens import unpatchify


class TimmViTOperator(nn.Module):
    """``timm.models.vision_transformer.VisionTransformer`` (no class token, no classifier) as an
    operator: patch tokens, transformer blocks, per-patch linear ``recovery``."""

    def __init__(
        self,
        *,
        channels: int,
        out_channels: int,
        size: int,
        patch: int,
        width: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        vision_transformer = require("timm.models.vision_transformer", adapter="timm", extra="timm")
        self.vit = vision_transformer.VisionTransformer(
            img_size=size,
            patch_size=patch,
            in_chans=channels,
            num_classes=0,
            global_pool="",
            class_token=False,
            embed_dim=width,
            depth=depth,
            num_heads=heads,
            mlp_ratio=mlp_ratio,
        )
        self.out_channels = out_channels
        self.patch = patch
        self.grid = (size // patch, size // patch)
        self.recovery = nn.Linear(width, out_channels * patch**2)

    def forward(self, x: Tensor) -> Tensor:
        return unpatchify(
            self.recovery(self.vit.forward_features(x)), self.out_channels, self.patch, self.grid
        )


def small_timm_vit(
    *, channels: int = 3, size: int = 16, patch: int = 4, width: int = 48, depth: int = 2, heads: int = 4
) -> TimmViTOperator:
    """A randomly initialised :class:`TimmViTOperator` (eval mode) with ``channels`` in and out."""
    return TimmViTOperator(
        channels=channels,
        out_channels=channels,
        size=size,
        patch=patch,
        width=width,
        depth=depth,
        heads=heads,
    ).eval()


@attrs.frozen(kw_only=True)
class TimmAdapter(TupleBatches, FieldAdapter, ModelAdapter):
    """timm ViT operators: compresses the blocks' ``attn.qkv``, ``attn.proj``, ``mlp.fc1``, ``mlp.fc2``.

    Skipped by default: patch embedding, output heads / recovery, ``Linear(1, d)`` conditioning,
    relative-position-bias MLPs, normalisations. Blocks: ``<vit>.blocks.{i}`` of the one
    ``VisionTransformer`` in the model (a true chain). Loss: any base-loss name (default MSE).
    """

    name: ClassVar[str] = "timm"
    skip_rules: ClassVar = (
        TIME_CONDITIONING,
        POSITION_BIAS,
        embedding("*patch_embed*"),
        recovery("head", "*.head", "*.head.*", "recovery", "*.recovery"),
        NORMALISATION,
    )

    def __attrs_post_init__(self) -> None:
        require("timm", adapter=self.name, extra="timm")
        super().__attrs_post_init__()

    def blocks(self, model: nn.Module) -> list[str] | None:
        from timm.models.vision_transformer import VisionTransformer

        owners = [name for name, module in model.named_modules() if isinstance(module, VisionTransformer)]
        if len(owners) != 1:
            return None
        prefix = f"{owners[0]}.blocks" if owners[0] else "blocks"
        return [f"{prefix}.{index}" for index in range(len(model.get_submodule(prefix)))]
