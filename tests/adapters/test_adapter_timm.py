"""timm adapter: a timm VisionTransformer operator compressed at 0.5 in block stages."""

from __future__ import annotations

import torch

from safesvd_core import compress, registry

from adapter_helpers import assert_compressed, fields, optional

optional("timm")
from safesvd_adapters.timm_vit import small_timm_vit  # noqa: E402


def test_timm_vit_compresses_at_half_in_block_stages():
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model, data = small_timm_vit(), fields((2, 3, 16, 16))
    assert isinstance(model.vit, VisionTransformer)
    adapter = registry("model_adapter").create(
        "timm", channels=["h", "u", "v"], roles=["water_height", "velocity_x", "velocity_y"]
    )
    result = compress(model, data, ratio=0.5, adapter=adapter)
    assert_compressed(result, result.model(data[0][0]), (2, 3, 16, 16))
    assert adapter.blocks(model) == ["vit.blocks.0", "vit.blocks.1"]
    assert [len(stage) for stage in result.stages] == [4, 4]
    maps = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
    assert set(result.ranks) == {f"vit.blocks.{i}.{n}" for i in (0, 1) for n in maps}
    skipped = adapter.skipped_layers(model)
    assert "not a linear map" in skipped["vit.patch_embed.proj"] and "recovery" in skipped["recovery"]
    assert adapter.field(data[0]).roles[0].value == "water_height"
