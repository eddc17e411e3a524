"""transformers adapter: a Poseidon-scOT-shaped HF Swinv2 operator and a HF ViT operator,
compressed at 0.5."""

from __future__ import annotations

import pytest
import torch

from safesvd_core import ConfigError, compress, registry

from adapter_helpers import assert_compressed, optional

optional("transformers")
from safesvd_adapters.hf_models import small_scot, small_vit  # noqa: E402

CHANNELS = {
    "channels": ["rho", "u", "v", "p"],
    "roles": ["density", "velocity_x", "velocity_y", "pressure"],
    "periodic": True,
}


def poseidon_batches(
    masked_channel: int | None = 3, batches: int = 2, per_channel: bool = False
) -> list[dict[str, torch.Tensor]]:
    """Poseidon's dicts; ``pixel_mask`` per entry ``(B, C, H, W)``, or ``(B, C)`` as Poseidon's loaders give
    it."""
    generator = torch.Generator().manual_seed(1)
    out = []
    for _ in range(batches):
        batch = {
            "pixel_values": torch.randn(2, 4, 16, 16, generator=generator),
            "labels": torch.randn(2, 4, 16, 16, generator=generator),
            "time": torch.rand(2, generator=generator),
        }
        if masked_channel is not None:
            batch["pixel_mask"] = torch.zeros((2, 4) if per_channel else (2, 4, 16, 16), dtype=torch.bool)
            batch["pixel_mask"][:, masked_channel] = True
        out.append(batch)
    return out


def adapter(**options):
    return registry("model_adapter").create("transformers", **{**CHANNELS, **options})


def test_scot_like_model_is_built_from_hf_swinv2_classes():
    from transformers import Swinv2PreTrainedModel
    from transformers.models.swinv2.modeling_swinv2 import Swinv2Encoder, Swinv2SelfAttention

    model = small_scot()
    assert isinstance(model, Swinv2PreTrainedModel) and isinstance(model.encoder, Swinv2Encoder)
    assert any(isinstance(m, Swinv2SelfAttention) for m in model.modules())
    names = adapter().compressible_layers(model)
    for suffix in (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
        "downsample.reduction",
    ):
        assert any(name.endswith(suffix) for name in names), suffix


@pytest.mark.parametrize("per_channel", [False, True], ids=["BCHW-mask", "BC-mask"])
def test_scot_compresses_at_half_with_masked_channels(per_channel):
    torch.manual_seed(0)
    model, data = small_scot(), poseidon_batches(per_channel=per_channel)
    ad = adapter(masked=["p"])
    result = compress(model, data, ratio=0.5, adapter=ad)
    out = ad.predict(result.model, data[0])
    assert_compressed(result, out, (2, 4, 16, 16))
    assert torch.equal(out[:, 3], data[0]["labels"][:, 3])  # pixel_mask: masked entries are the labels
    blocks = ad.blocks(model)
    assert blocks and all(type(model.get_submodule(b)).__name__ == "Swinv2Layer" for b in blocks)
    assert len(result.stages) < len(result.ranks)  # one stage per block, not per layer
    with_factors = [stage for stage in result.stages if any(result.ranks[name] for name in stage)]
    assert result.passes["stages"] == len(with_factors)  # a stage of dense layers takes no pass
    assert result.passes["prefix"] > 1  # each Swinv2 stage and decoder level starts with a prefix pass
    field = ad.field(data[0])
    assert field.masked == ("p",) and field.periodic == (True, True) and field.spacing == (1 / 16, 1 / 16)


def test_scot_skips_conditioning_position_bias_embedding_and_recovery_with_reasons():
    model = small_scot()
    skipped = adapter().skipped_layers(model)
    assert "time" in skipped["embedding_norm.weight"] and "time" in skipped["output_norm.bias"]
    assert (
        "position-bias" in skipped["encoder.layers.0.blocks.0.attention.self.continuous_position_bias_mlp.0"]
    )
    assert "not a linear map" in skipped["embeddings.patch_embeddings.projection"]
    assert "not a linear map" in skipped["patch_recovery.projection"]
    names = set(adapter().compressible_layers(model))
    assert not names & set(skipped)
    linear_like = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    assert names | set(skipped) == {n for n, m in model.named_modules() if isinstance(m, linear_like)}
    one_by_one = small_scot(patch=1, size=8)  # a 1×1 patch embedding is a linear map, skipped by name
    assert "embedding" in adapter().skipped_layers(one_by_one)["embeddings.patch_embeddings.projection"]


def test_poseidon_loss_is_per_channel_group_relative_l1():
    data = poseidon_batches(masked_channel=None)[0]
    labels = data["labels"]
    prediction = labels + 0.1
    ad = adapter()
    assert ad.groups(4, data) == [[0], [1, 2], [3]]
    terms = [
        (prediction[:, g] - labels[:, g]).abs().mean() / labels[:, g].abs().mean() for g in ([0], [1, 2], [3])
    ]
    torch.testing.assert_close(ad.base_loss(prediction, data), torch.stack(terms).mean())
    # a masked channel carries no error but its group still counts, as in ScOT's own loss
    masked = adapter(masked=["p"])
    assert masked.groups(4, data) == [[0], [1, 2], [3]]
    torch.testing.assert_close(masked.base_loss(prediction, data), (terms[0] + terms[1]) / 3)
    data["pixel_mask"] = torch.tensor(
        [[False, False, False, True]] * 2
    )  # (B, C), as Poseidon's loaders give it
    torch.testing.assert_close(ad.base_loss(prediction, data), (terms[0] + terms[1]) / 3)
    assert ad.field(data).masked == ("p",)  # masked in every sample of the batch: masked for the physics too
    assert adapter(channel_groups=[0, 1, 3, 4]).groups(4, data) == [[0], [1, 2], [3]]
    assert registry("model_adapter").create("transformers").groups(4, data) == [[0, 1, 2, 3]]
    assert float(adapter(loss="mse").base_loss(prediction, data)) == pytest.approx(0.01, rel=1e-5)


def test_pixel_masks_per_channel_and_per_entry_agree():
    model, (batch,) = small_scot(), poseidon_batches(per_channel=True, batches=1)
    per_entry = dict(batch, pixel_mask=batch["pixel_mask"][:, :, None, None].expand(-1, -1, 16, 16))
    ad = adapter()
    out = ad.predict(model, batch)
    assert torch.equal(out, ad.predict(model, per_entry)) and torch.equal(out[:, 3], batch["labels"][:, 3])
    with pytest.raises(ConfigError, match=r"pixel_mask must be \(batch, channels\)"):
        ad.predict(model, dict(batch, pixel_mask=torch.zeros(4, dtype=torch.bool)))


def test_vit_operator_compresses_at_half_in_block_stages():
    from transformers import ViTModel

    torch.manual_seed(0)
    model, data = small_vit(), poseidon_batches(masked_channel=None)
    assert isinstance(model.vit, ViTModel)
    ad = adapter()
    result = compress(model, data, ratio=0.5, adapter=ad)
    assert_compressed(result, ad.predict(result.model, data[0]), (2, 4, 16, 16))
    blocks = ad.blocks(model)  # transformers 5 names them vit.layers.{i}, 4.x vit.encoder.layer.{i}
    assert [type(model.get_submodule(b)).__name__ for b in blocks] == ["ViTLayer", "ViTLayer"]
    assert (
        len({b.rpartition(".")[0] for b in blocks}) == 1
        and blocks[0].endswith(".0")
        and blocks[1].endswith(".1")
    )
    assert [len(stage) for stage in result.stages] == [6, 6]
    skipped = ad.skipped_layers(model)
    assert {"time_scale", "time_shift", "recovery"} <= set(skipped)


def test_transformers_adapter_errors_are_clear():
    with pytest.raises(ConfigError, match="channel_groups"):
        adapter(channel_groups=[1, 3])
    with pytest.raises(ConfigError, match="loss must be"):
        adapter(loss="poseidonn")
    with pytest.raises(ConfigError, match="dict batches"):
        adapter().predict(small_vit(), (torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)))
    with pytest.raises(ConfigError, match="time-conditioned"):
        small_scot()(pixel_values=torch.randn(1, 4, 16, 16))
    with pytest.raises(ConfigError, match="has no attribute 'prediction'"):
        adapter(output_key="prediction").predict(small_vit(), poseidon_batches()[0])


def test_poseidon_style_trajectories_roll_out_and_calibrate():
    """labels (B, K, C, H, W) beside pixel_values (B, C, H, W): K steps ``time`` apart; each step
    feeds the previous prediction back, keeps time and pixel_mask, scores against labels[:, k-1]."""
    torch.manual_seed(0)
    model, ad = small_scot(), adapter()
    generator = torch.Generator().manual_seed(2)
    items = [
        {
            "pixel_values": torch.randn(2, 4, 16, 16, generator=generator),
            "labels": torch.randn(2, 3, 4, 16, 16, generator=generator),
            "time": torch.rand(2, generator=generator),
        }
        for _ in range(2)
    ]
    assert ad.trajectory_steps(items[0]) == 3 and ad.trajectory_steps(poseidon_batches(None)[0]) is None
    state = torch.randn(2, 4, 16, 16)
    second = ad.rollout_step(items[0], state, 2)
    assert second["pixel_values"] is state and torch.equal(second["labels"], items[0]["labels"][:, 1])
    assert torch.equal(second["time"], items[0]["time"])
    assert ad.rollout_step(items[0], None, 1)["pixel_values"] is items[0]["pixel_values"]
    with pytest.raises(ConfigError, match="beyond the trajectory's 3 steps"):
        ad.rollout_step(items[0], None, 4)
    result = compress(model, items, ratio=0.5, adapter=ad)
    assert result.met_budget and "RolloutSource(steps=3" in result.objective["source"]
    assert torch.isfinite(ad.predict(result.model, ad.rollout_step(items[0], None, 1))).all()
