"""The ``the_well`` adapter: The Well's models (its AViT is MPP's architecture), channels-last data.

Batches are The Well's dicts, ``input_fields`` ``(B, T_in, *grid, C)``, ``output_fields``
``(B, T_out, *grid, C)`` and optionally ``constant_fields`` ``(B, *grid, C_c)``, formatted as
The Well's ``DefaultChannelsLastFormatter`` does (time stacked into channels, constants appended,
NaN → 0; the target is the first output step), or ``(input, target[, domain])`` tuples already
channels-last. The prediction and reference are returned channels-first ``(B, C, *grid)``,
safesvd's layout for losses and fields. ``the_well`` is imported when the adapter is created
(extra ``safesvd[the-well]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import torch
from torch import Tensor, nn

from safesvd_core.plugin import ConfigError, ModelAdapter

from .framework import FieldAdapter, TupleBatches, require, sibling_chain, tuple_parts
from .selection import NORMALISATION, POSITION_BIAS, TIME_CONDITIONING, embedding, recovery

_AVIT = "the_well.benchmark.models.avit"


def small_avit(
    *, fields: int = 4, steps: int = 1, size: int = 32, width: int = 48, heads: int = 4, blocks: int = 2
) -> nn.Module:
    """A randomly initialised the_well ``AViT`` (eval mode): ``fields × steps`` inputs, ``fields``
    outputs, on a ``size × size`` grid (a multiple of 16; ``width`` a multiple of 48)."""
    avit = require(_AVIT, adapter="the_well", extra="the-well")
    return avit.AViT(
        dim_in=fields * steps,
        dim_out=fields,
        n_spatial_dims=2,
        spatial_resolution=(size, size),
        hidden_dim=width,
        num_heads=heads,
        processor_blocks=blocks,
    ).eval()


@attrs.frozen(kw_only=True)
class WellAdapter(TupleBatches, FieldAdapter, ModelAdapter):
    """The Well's AViT (and its other channels-last models).

    The AViT's compressible maps are its blocks' ``fused_projection`` (q, k, v and the MLP's first
    layer in one ``Linear(d, 7d)``), ``output_head`` and ``mlp_remaining.1``; in MPP's original
    code the same heads are 1×1 ``Conv2d``, which safesvd compresses as linear maps too. Skipped:
    the hMLP patch stem (``embed``) and de-bedding (``debed``): strided and transposed
    convolutions. Loss: ``nmse`` (MPP's / The Well's per-channel normalised MSE). Blocks:
    ``blocks.{i}`` (a true chain).
    """

    name: ClassVar[str] = "the_well"
    skip_rules: ClassVar = (
        TIME_CONDITIONING,
        POSITION_BIAS,
        embedding("embed", "embed.*", "*.embed.*"),
        recovery("debed", "debed.*", "*.debed.*"),
        NORMALISATION,
    )

    loss: Any = "nmse"

    def __attrs_post_init__(self) -> None:
        require(_AVIT, adapter=self.name, extra="the-well")
        super().__attrs_post_init__()

    def _parts(self, batch: Any) -> tuple[Any, Tensor, str | None]:
        """``(input, target, domain)``, channels-last."""
        if not (isinstance(batch, Mapping) and "input_fields" in batch):
            return tuple_parts(batch, self.name)
        if "output_fields" not in batch:
            raise ConfigError(f"a The Well batch needs 'output_fields'; its keys are {sorted(batch)}")
        x = batch["input_fields"].movedim(1, -2).flatten(-2)  # b t ... c -> b ... (t c)
        if "constant_fields" in batch:
            x = torch.cat([x, batch["constant_fields"]], dim=-1)
        return torch.nan_to_num(x), torch.nan_to_num(batch["output_fields"][:, 0]), batch.get("domain")

    def predict(self, model: nn.Module, batch: Any) -> Tensor:
        return super().predict(model, batch).movedim(-1, 1)

    def reference(self, batch: Any) -> Tensor:
        return super().reference(batch).movedim(-1, 1)

    def trajectory_steps(self, item: Any) -> int | None:
        return None

    def rollout_step(self, sequence: Any, state: Tensor | None, step: int) -> Any:
        raise ConfigError(
            "the the_well adapter cannot roll a model out: its inputs stack several time steps "
            "(channels-last) and constant fields, which a prediction does not provide"
        )

    def blocks(self, model: nn.Module) -> list[str] | None:
        return sibling_chain(model, require(_AVIT, adapter=self.name, extra="the-well").AxialAttentionBlock)
