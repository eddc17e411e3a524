"""the_well adapter: The Well's AViT (MPP's architecture) on channels-last batches, compressed at 0.5."""

from __future__ import annotations

import torch

from safesvd_core import compress, registry

from adapter_helpers import assert_compressed, optional

optional("the_well.benchmark.models.avit")
from safesvd_adapters.well_avit import small_avit  # noqa: E402


def well_batches(batches: int = 2, steps: int = 2) -> list[dict[str, torch.Tensor]]:
    """The Well's layout: (B, T, H, W, C) input and output fields."""
    generator = torch.Generator().manual_seed(1)
    return [
        {
            "input_fields": torch.randn(2, steps, 32, 32, 4, generator=generator),
            "output_fields": torch.randn(2, 1, 32, 32, 4, generator=generator),
        }
        for _ in range(batches)
    ]


def test_avit_compresses_at_half_on_channels_last_data():
    from the_well.benchmark.models.avit import AViT

    torch.manual_seed(0)
    model, data = small_avit(steps=2), well_batches()
    assert isinstance(model, AViT)
    adapter = registry("model_adapter").create(
        "the_well", channels=["rho", "u", "v", "e"], roles=["density", "velocity_x", "velocity_y", "energy"]
    )
    prediction = adapter.predict(model, data[0])
    assert prediction.shape == (2, 4, 32, 32)  # channels-first for safesvd
    torch.testing.assert_close(adapter.reference(data[0]), data[0]["output_fields"][:, 0].movedim(-1, 1))
    result = compress(model, data, ratio=0.5, adapter=adapter)
    assert_compressed(
        result, result.model(data[0]["input_fields"].movedim(1, -2).flatten(-2)), (2, 32, 32, 4)
    )
    assert adapter.blocks(model) == ["blocks.0", "blocks.1"]
    heads = ("fused_projection", "output_head", "mlp_remaining.1")
    assert set(result.ranks) == {f"blocks.{i}.{n}" for i in (0, 1) for n in heads}
    skipped = adapter.skipped_layers(model)
    assert (
        "not a linear map" in skipped["embed.in_projs.0"]
        and "not a linear map" in skipped["debed.out_proj.6"]
    )


def test_nmse_is_per_sample_and_channel():
    adapter = registry("model_adapter").create("the_well")
    batch = well_batches(batches=1)[0]
    target = adapter.reference(batch)
    prediction = target * 1.1
    expected = ((prediction - target) ** 2).mean((2, 3)) / ((target**2).mean((2, 3)) + 1e-7)
    torch.testing.assert_close(adapter.base_loss(prediction, batch), expected.mean())
