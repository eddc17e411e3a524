"""Poseidon's ScOT through the transformers adapter, on a structural stand-in shaped like Poseidon-T
(tiny width): its blocks by class name, stage passes, the budget at 0.4, its loss from its config,
``(B, C)`` pixel masks, and a save/reload round trip with ``from_pretrained`` + ``load_compressed``."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from safesvd_core import ConfigError, compress, evaluate, load_compressed, registry, save_compressed

from adapter_helpers import assert_compressed, optional

optional("transformers")
from safesvd_adapters.scot_like import ScOTLike, poseidon_t_like, scot_like  # noqa: E402

CHANNELS = {"channels": ["rho", "u", "v", "p"], "roles": ["density", "velocity_x", "velocity_y", "pressure"]}
BOUNDS = (0, 1, 3, 4)  # Poseidon's [rho], [u, v], [p]


def batches(count: int = 2, size: int = 64, steps: int | None = None) -> list[dict[str, torch.Tensor]]:
    """Poseidon-style dicts as its data loaders collate them: ``time`` float64 ``(B,)``, pressure
    masked by a ``(B, C)`` ``pixel_mask`` (its incompressible data sets); ``steps``: rollout labels."""
    generator = torch.Generator().manual_seed(1)
    labels = (2,) + ((steps,) if steps else ()) + (4, size, size)
    return [
        {
            "pixel_values": torch.randn(2, 4, size, size, generator=generator),
            "labels": torch.randn(*labels, generator=generator),
            "time": torch.rand(2, generator=generator, dtype=torch.float64),
            "pixel_mask": torch.tensor([[False, False, False, True]] * 2),
        }
        for _ in range(count)
    ]


def adapter(**options):
    return registry("model_adapter").create("transformers", **{**CHANNELS, **options})


def direct_poseidon_loss(prediction, labels, pixel_mask, bounds, p=1):
    """Poseidon's loss formula written out: masked channels take the labels' values, then per group
    [a, b) the mean |error|^p over mean |label|^p (+ 1e-10), averaged over all groups."""
    prediction = prediction.clone()
    prediction[pixel_mask] = labels[pixel_mask]
    terms = []
    for a, b in pairwise(bounds):
        error = (prediction[:, a:b] - labels[:, a:b]).abs().pow(p).mean()
        terms.append(error / (labels[:, a:b].abs().pow(p).mean() + 1e-10))
    return sum(terms) / len(terms)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return poseidon_t_like()


def test_stand_in_has_scot_names_nesting_and_calling_convention(model):
    from transformers import PreTrainedModel
    from transformers.models.swinv2.modeling_swinv2 import Swinv2Attention, Swinv2Layer

    assert isinstance(model, PreTrainedModel) and model.config.depths == [4, 4, 4, 4]
    assert not any(isinstance(m, Swinv2Layer) for m in model.modules())  # its layers are ScOT's own class
    layer = model.get_submodule("encoder.layers.1.blocks.2")
    assert type(layer).__name__ == "ScOTLayer" and isinstance(layer.attention, Swinv2Attention)
    assert type(model.get_submodule("residual_blocks.2.1")).__name__ == "ConvNeXtBlock"
    assert (
        type(model.get_submodule("residual_blocks.3.0")).__name__ == "Identity"
    )  # skip_connections (2, 2, 2, 0)
    for name in (
        "embeddings.patch_embeddings.projection",
        "embeddings.norm.weight",
        "encoder.layers.2.downsample.reduction",
        "decoder.layers.0.blocks.3.layernorm_after.bias",
        "decoder.layers.0.upsample.upsample",
        "decoder.layers.2.upsample.mixup",
        "residual_blocks.0.1.pwconv2",
        "patch_recovery.mixup",
    ):
        model.get_submodule(name)
    hidden = torch.randn(2, 16 * 16, 12)
    with torch.no_grad():  # (hidden, dims, time) in, a tuple out; block 1 of a level is the shifted one
        out = model.get_submodule("encoder.layers.0.blocks.1")(hidden, (16, 16), torch.rand(2))
    assert isinstance(out, tuple) and out[0].shape == hidden.shape


def test_stand_in_at_poseidon_t_width_has_its_layer_count_and_coverage():
    full = scot_like("T")  # Poseidon-T: 20.8M parameters
    ad = adapter()
    layers = ad.compressible_layers(full)
    assert sum(p.numel() for p in full.parameters()) == 20_774_444 and len(layers) == 213
    assert ad.coverage(full).fraction > 0.98


def test_blocks_are_scot_layers_and_convnext_skips_found_by_class_name(model):
    blocks = adapter().blocks(model)
    kinds = [type(model.get_submodule(b)).__name__ for b in blocks]
    assert kinds.count("ScOTLayer") == 32 and kinds.count("ConvNeXtBlock") == 6 and len(blocks) == 38


def test_compress_at_04_one_stage_pass_per_block_and_per_layer_outside_blocks(model):
    ad, data = adapter(), batches()
    blocks, layers = ad.blocks(model), ad.compressible_layers(model)
    outside = [name for name in layers if not any(name.startswith(block + ".") for block in blocks)]
    assert (
        sorted(name.rpartition(".")[2] for name in outside)
        == ["mixup"] * 3 + ["reduction"] * 3 + ["upsample"] * 3
    )
    result = compress(model, data, ratio=0.4, adapter=ad)
    assert_compressed(result, ad.predict(result.model, data[0]), (2, 4, 64, 64), ratio=0.4)
    assert result.met_budget and len(result.ranks) == 213
    assert len(result.stages) == len(blocks) + len(outside) == 47
    # one pass per stage with a factored layer (a stage whose layers all stay dense takes none)
    with_factors = [stage for stage in result.stages if any(result.ranks[name] for name in stage)]
    assert result.passes["stages"] == len(with_factors)
    assert {"residual_blocks.0.0.pwconv1", "residual_blocks.0.0.pwconv2"} <= set(result.ranks)


def test_skips_conditioning_position_bias_embedding_recovery_and_depthwise_convs(model):
    skipped = adapter().skipped_layers(model)
    assert "time" in skipped["encoder.layers.0.blocks.0.layernorm_before.weight"]
    assert "time" in skipped["residual_blocks.1.0.norm.bias"]
    assert (
        "position-bias" in skipped["decoder.layers.3.blocks.0.attention.self.continuous_position_bias_mlp.0"]
    )
    assert "not a linear map" in skipped["embeddings.patch_embeddings.projection"]
    assert "not a linear map" in skipped["residual_blocks.0.0.dwconv"]
    assert "not a linear map" in skipped["patch_recovery.projection"]


def test_loss_groups_and_p_are_read_from_the_scot_config(model):
    data = batches(count=1)[0]
    bound = adapter().for_model(model)
    assert bound.channel_groups == BOUNDS and bound.p == 1
    with torch.no_grad():
        output = model(**data)
        prediction = bound.predict(model, data)
    direct = direct_poseidon_loss(prediction, data["labels"], data["pixel_mask"], BOUNDS)
    torch.testing.assert_close(bound.base_loss(prediction, data), direct)
    torch.testing.assert_close(output.loss, direct)
    one_group = scot_like("T", embed_dim=12, image_size=64, channel_slice_list_normalized_loss=[0, 4])
    base = evaluate(one_group, one_group, [data], adapter=adapter()).metrics[
        0
    ]  # the config's group, not the roles'
    with torch.no_grad():
        expected = direct_poseidon_loss(one_group(**data).output, data["labels"], data["pixel_mask"], (0, 4))
    assert base.name == "base loss" and base.original == pytest.approx(float(expected), rel=1e-6)
    raw = prediction + 1.0  # the adapter masks by itself too, and p = 2 comes from the config
    square = (
        registry("model_adapter")
        .create("transformers")
        .for_model(scot_like("T", embed_dim=12, image_size=64, p=2))
    )
    torch.testing.assert_close(
        square.base_loss(raw, data),
        direct_poseidon_loss(raw, data["labels"], data["pixel_mask"], BOUNDS, p=2),
    )
    tracer = scot_like(
        "T",
        embed_dim=12,
        image_size=64,
        num_channels=5,
        num_out_channels=5,
        channel_slice_list_normalized_loss=[0, 1, 3, 4, 5],
    )
    assert registry("model_adapter").create("transformers").for_model(tracer).groups(5, data) == [
        [0],
        [1, 2],
        [3],
        [4],
    ]


def test_config_disagreements_are_clear_errors_and_no_groups_means_plain_l1(model):
    with pytest.raises(ConfigError, match=r"channel_groups=\(0, 1, 4\) disagrees with the model's config"):
        adapter(channel_groups=[0, 1, 4]).for_model(model)
    with pytest.raises(ConfigError, match="p=2 disagrees"):
        compress(
            model, batches(), ratio=0.4, adapter=adapter(p=2)
        )  # compress reads the config before any pass
    assert adapter(channel_groups=list(BOUNDS), p=1).for_model(model).channel_groups == BOUNDS
    with pytest.raises(ConfigError, match="names 3 channels"):
        registry("model_adapter").create("transformers", channels=["u", "v", "p"]).for_model(model)
    plain = adapter().for_model(
        scot_like("T", embed_dim=12, image_size=64, channel_slice_list_normalized_loss=None)
    )
    assert plain.loss == "l1"
    assert adapter(loss="mse").for_model(model).channel_groups is None  # another loss: the config is not read


def test_masked_channels_come_from_the_batch_and_both_mask_shapes_agree(model):
    data = batches(count=1)[0]
    ad = adapter()
    assert ad.field(data).masked == ("p",)
    per_entry = dict(data, pixel_mask=data["pixel_mask"][:, :, None, None].expand(-1, -1, 64, 64))
    with torch.no_grad():
        assert torch.equal(ad.predict(model, data), ad.predict(model, per_entry))
    assert ad.field(per_entry).masked == ("p",)
    partial = dict(data, pixel_mask=per_entry["pixel_mask"].clone())
    partial["pixel_mask"][0, 3, 0, 0] = False
    assert ad.field(partial).masked == ()  # not masked everywhere: the physics keeps the channel


def test_rollouts_keep_the_per_channel_mask(model):
    ad = adapter()
    items = batches(count=2, steps=2)
    second = ad.rollout_step(items[0], torch.zeros(2, 4, 64, 64), 2)
    assert second["pixel_mask"].shape == (2, 4) and torch.equal(second["labels"], items[0]["labels"][:, 1])
    result = compress(model, items, ratio=0.6, adapter=ad, recipe="svd-llm")
    assert result.met_budget


def test_save_then_reload_with_from_pretrained_and_load_compressed(model, tmp_path):
    model.save_pretrained(tmp_path / "checkpoint")
    loaded = ScOTLike.from_pretrained(tmp_path / "checkpoint").eval()
    data = batches(count=2)
    ad = adapter()
    result = compress(loaded, data, ratio=0.4, adapter=ad, recipe="svd-llm")
    save_compressed(result, tmp_path / "compressed.safetensors")
    fresh = load_compressed(
        ScOTLike.from_pretrained(tmp_path / "checkpoint").eval(), tmp_path / "compressed.safetensors"
    )
    with torch.no_grad():
        torch.testing.assert_close(ad.predict(fresh, data[0]), ad.predict(result.model, data[0]))
    assert sum(p.numel() for p in fresh.parameters()) == result.params_after


def test_a_model_that_predicts_fewer_channels_than_it_reads_rolls_out_with_the_rest_carried_over():
    """Poseidon's trainer appends ``pixel_values[:, C':]`` to a C'-channel prediction for the next input."""
    ad = registry("model_adapter").create("transformers")
    generator = torch.Generator().manual_seed(2)
    item = {
        "pixel_values": torch.randn(2, 5, 8, 8, generator=generator),
        "labels": torch.randn(2, 3, 4, 8, 8, generator=generator),
        "time": torch.ones(2),
    }
    assert ad.trajectory_steps(item) == 3
    prediction = torch.randn(2, 4, 8, 8, generator=generator)
    second = ad.rollout_step(item, prediction, 2)
    assert torch.equal(second["pixel_values"][:, :4], prediction)
    assert torch.equal(second["pixel_values"][:, 4:], item["pixel_values"][:, 4:])
    assert torch.equal(second["labels"], item["labels"][:, 1])
    wrong = {**item, "labels": torch.randn(2, 3, 6, 8, 8)}  # more channels than it reads: not a trajectory
    assert ad.trajectory_steps(wrong) is None
    with pytest.raises(
        ConfigError, match="labels shaped \\(B, K, C', H, W\\), C' ≤ C.*got labels \\(2, 3, 6, 8, 8\\)"
    ):
        ad.rollout_step(wrong, None, 1)


def test_transformers_5_removing_get_head_mask_names_the_poseidon_extra():
    class NeedsHeadMask(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)

        def forward(self, pixel_values, time=None):
            return self.get_head_mask(None, 4)  # what ScOT calls; transformers 5 removed it

    ad = registry("model_adapter").create("transformers")
    with pytest.raises(ConfigError, match="transformers 5 removed.*pip install 'safesvd\\[poseidon\\]'"):
        ad.predict(
            NeedsHeadMask(), {"pixel_values": torch.zeros(1, 2, 4, 4), "labels": torch.zeros(1, 2, 4, 4)}
        )
    # through compress: the cause alone, not inside "cannot run the first calibration item … check the
    # input shape and layout", which points at the wrong one
    item = {"pixel_values": torch.zeros(1, 2, 4, 4), "labels": torch.zeros(1, 2, 4, 4)}
    with pytest.raises(
        ConfigError, match="^NeedsHeadMask calls get_head_mask, which transformers 5 removed"
    ) as caught:
        compress(NeedsHeadMask(), [item], ratio=0.5, adapter="transformers")
    assert "first calibration item" not in str(caught.value)
