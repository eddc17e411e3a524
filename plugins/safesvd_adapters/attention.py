"""``nn.MultiheadAttention`` rewritten so that its packed input projection is an ``nn.Linear``.

``nn.MultiheadAttention`` keeps ``in_proj_weight`` as a raw parameter and calls ``out_proj``'s
weight directly, so neither is a module call that safesvd can capture or replace.
:class:`ExplicitMultiheadAttention` computes the same function with ``in_proj = Linear(d, 3d)``
and the original ``out_proj`` called as modules, and attention by
``F.scaled_dot_product_attention``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from safesvd_core.plugin import ConfigError, set_submodule


def packable(module: nn.MultiheadAttention) -> bool:
    """Whether ``module`` has the packed ``in_proj_weight`` layout that can be rewritten."""
    return (
        bool(module._qkv_same_embed_dim)
        and module.bias_k is None
        and module.bias_v is None
        and not module.add_zero_attn
    )


def _additive(mask: Tensor | None, dtype: torch.dtype, name: str) -> Tensor | None:
    """A boolean mask (True = not allowed) or an additive float mask, as an additive float mask."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    if not torch.is_floating_point(mask):
        raise ConfigError(f"{name} must be a bool or floating-point tensor, got {mask.dtype}")
    return mask.to(dtype)


class ExplicitMultiheadAttention(nn.Module):
    """Output-identical stand-in for a packed ``nn.MultiheadAttention``.

    Self-attention (``query is key is value``) runs ``in_proj`` once. Cross-attention applies the
    same ``in_proj`` to each distinct input and keeps the q, k or v rows of each result, exactly
    what the packed weight does; the layer then runs two or three times per call.

    ``_qkv_same_embed_dim`` is False so that ``nn.TransformerEncoderLayer`` never takes its fused
    fast path, which reads ``self_attn.in_proj_weight`` directly.
    """

    _qkv_same_embed_dim = False

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        in_proj: nn.Module,
        out_proj: nn.Module,
        dropout: float = 0.0,
        batch_first: bool = False,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.in_proj = in_proj
        self.out_proj = out_proj

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> ExplicitMultiheadAttention:
        """The rewrite of ``module``, sharing its parameters."""
        if not packable(module):
            raise ConfigError(
                "only nn.MultiheadAttention with kdim = vdim = embed_dim, no add_bias_kv and no "
                "add_zero_attn has a packed in_proj_weight to rewrite"
            )
        weight = module.in_proj_weight
        in_proj = nn.Linear(
            module.embed_dim,
            3 * module.embed_dim,
            bias=module.in_proj_bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
        in_proj.weight = weight
        if module.in_proj_bias is not None:
            in_proj.bias = module.in_proj_bias
        rewritten = cls(
            module.embed_dim,
            module.num_heads,
            in_proj=in_proj,
            out_proj=module.out_proj,
            dropout=module.dropout,
            batch_first=module.batch_first,
        )
        return rewritten.train(module.training)

    def to_torch(self) -> nn.MultiheadAttention:
        """The packed ``nn.MultiheadAttention`` computing the same function (the inverse of
        :meth:`from_torch`); a factored ``in_proj``/``out_proj`` is multiplied out into dense weights."""
        weight = self.in_proj.weight
        module = nn.MultiheadAttention(
            self.embed_dim,
            self.num_heads,
            dropout=self.dropout,
            bias=self.in_proj.bias is not None,
            batch_first=self.batch_first,
            device=weight.device,
            dtype=weight.dtype,
        )
        with torch.no_grad():
            module.in_proj_weight.copy_(weight)
            module.out_proj.weight.copy_(self.out_proj.weight)
            if self.in_proj.bias is not None:
                module.in_proj_bias.copy_(self.in_proj.bias)
                module.out_proj.bias.copy_(self.out_proj.bias)
        return module.train(self.training)

    @property
    def in_proj_bias(self) -> Tensor | None:
        """The packed input bias (``nn.TransformerEncoderLayer`` reads it)."""
        return self.in_proj.bias

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        e = self.embed_dim
        if query is key and key is value:
            return self.in_proj(query).chunk(3, dim=-1)
        q = self.in_proj(query)[..., :e]
        if key is value:
            k, v = self.in_proj(key)[..., e:].chunk(2, dim=-1)
            return q, k, v
        return q, self.in_proj(key)[..., e : 2 * e], self.in_proj(value)[..., 2 * e :]

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        if is_causal and attn_mask is None:
            raise ConfigError("is_causal needs attn_mask, as in nn.MultiheadAttention")
        batched = query.dim() == 3
        q, k, v = self._project(query, key, value)
        if not batched:
            q, k, v = q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        # (length, batch, embed) → (batch, heads, length, head_dim)
        q, k, v = (t.unflatten(-1, (self.num_heads, self.head_dim)).permute(1, 2, 0, 3) for t in (q, k, v))
        mask = self._mask(attn_mask, key_padding_mask, q)
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
            weights = torch.softmax(scores if mask is None else scores + mask, dim=-1)
            weights = F.dropout(weights, p=dropout) if dropout > 0.0 else weights
            attended = weights @ v
        else:
            attended, weights = (
                F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout),
                None,
            )
        out = self.out_proj(attended.permute(2, 0, 1, 3).flatten(-2))  # (length, batch, embed)
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)
        if not batched:
            return out.squeeze(1), None if weights is None else weights.squeeze(0)
        return (out.transpose(0, 1) if self.batch_first else out), weights

    def _mask(self, attn_mask: Tensor | None, key_padding_mask: Tensor | None, q: Tensor) -> Tensor | None:
        """One additive mask broadcastable to ``(batch, heads, L, S)``."""
        batch = q.shape[0]
        attn = _additive(attn_mask, q.dtype, "attn_mask")
        padding = _additive(key_padding_mask, q.dtype, "key_padding_mask")
        if attn is not None:
            attn = (
                attn.view(1, 1, *attn.shape)
                if attn.dim() == 2
                else attn.view(batch, self.num_heads, *attn.shape[-2:])
            )
        if padding is not None:
            padding = padding.view(batch, 1, 1, padding.shape[-1])
        if attn is None or padding is None:
            return attn if padding is None else padding
        return attn + padding


def rewrite_attention(model: nn.Module) -> nn.Module:
    """Replace every packable ``nn.MultiheadAttention`` in ``model`` (in place) and return the model.

    ``nn.TransformerEncoder`` modules whose layers were rewritten stop using torch's nested-tensor
    fast path (``use_nested_tensor = False``); see docs/adapters.md for its effect on padded tokens.
    """
    if isinstance(model, nn.MultiheadAttention):
        return ExplicitMultiheadAttention.from_torch(model) if packable(model) else model
    targets = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.MultiheadAttention) and packable(module)
    ]
    for name in targets:
        set_submodule(model, name, ExplicitMultiheadAttention.from_torch(model.get_submodule(name)))
    for module in model.modules():
        if isinstance(module, nn.TransformerEncoder) and any(
            isinstance(getattr(layer, "self_attn", None), ExplicitMultiheadAttention)
            for layer in module.layers
        ):
            module.use_nested_tensor = False
    return model


def restore_attention(model: nn.Module) -> nn.Module:
    """Turn every :class:`ExplicitMultiheadAttention` of ``model`` back into a packed
    ``nn.MultiheadAttention`` (in place; the inverse of :func:`rewrite_attention`) and return the model."""
    if isinstance(model, ExplicitMultiheadAttention):
        return model.to_torch()
    for name in [
        name for name, module in model.named_modules() if isinstance(module, ExplicitMultiheadAttention)
    ]:
        set_submodule(model, name, model.get_submodule(name).to_torch())
    return model


def transformer_layer_names(model: nn.Module) -> list[str]:
    """Qualified names of the layers of every ``nn.TransformerEncoder``/``Decoder`` in ``model``,
    in module order: pass them as the generic adapter's ``block_names`` for block stages."""
    return [
        f"{name}.layers.{index}" if name else f"layers.{index}"
        for name, module in model.named_modules()
        if isinstance(module, (nn.TransformerEncoder, nn.TransformerDecoder))
        for index in range(len(module.layers))
    ]
