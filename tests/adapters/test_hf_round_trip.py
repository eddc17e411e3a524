"""Hugging Face round trip of compressed models, for the ScOT stand-in, a HF ViTModel and HF Swinv2:
``save_pretrained`` → ``from_pretrained`` through safesvd gives the compressed model bit for bit, a plain
``cls.from_pretrained`` its dense equivalent (never re-randomised layers), also through the model's own
``save_pretrained``, sharded folders, ``push_to_hub`` (upload intercepted, offline) and half precision;
folders that disagree are refused, the layer named."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from safesvd_core import (
    ConfigError,
    LowRankLinear,
    compress,
    from_pretrained,
    load_compressed,
    save_compressed,
    save_pretrained,
)

from adapter_helpers import optional

optional("transformers")
from transformers import ViTModel  # noqa: E402 - after the transformers check

from safesvd_adapters.hf_models import SmallScOT, small_scot, small_vit  # noqa: E402
from safesvd_adapters.scot_like import ScOTLike, scot_like  # noqa: E402


def batches(count: int = 2) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        {
            "pixel_values": torch.randn(2, 4, 16, 16, generator=generator),
            "time": torch.rand(2, generator=generator),
            "labels": torch.randn(2, 4, 16, 16, generator=generator),
        }
        for _ in range(count)
    ]


def tiny_scot_like() -> ScOTLike:
    return scot_like(
        "T",
        embed_dim=12,
        image_size=16,
        patch_size=2,
        window_size=4,
        depths=(2, 2),
        num_heads=(2, 4),
        skip_connections=(1, 0),
    )


def field(model, batch):
    return model(**batch).output


def vit_tokens(model, batch):
    return model(pixel_values=batch["pixel_values"]).last_hidden_state


#: family → (model to compress, its HF PreTrainedModel, the class that loads it, from_pretrained options, run)
FAMILIES = {
    "scot-like": (tiny_scot_like, lambda model: model, ScOTLike, {}, field),
    "vit": (small_vit, lambda model: model.vit, ViTModel, {"add_pooling_layer": False}, vit_tokens),
    "swinv2": (small_scot, lambda model: model, SmallScOT, {}, field),
}


def compressed(name: str) -> SimpleNamespace:
    """The family's model compressed at 0.5, its HF model, loading class and options,
    and its reference output."""
    build, hf_of, cls, options, run = FAMILIES[name]
    torch.manual_seed(0)
    result = compress(build(), batches(), ratio=0.5, adapter="transformers")
    model, batch = hf_of(result.model), batches(1)[0]
    with torch.no_grad():
        reference = run(model, batch)
    return SimpleNamespace(
        result=result, model=model, cls=cls, options=options, run=lambda m: run(m, batch), reference=reference
    )


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    return compressed(request.param)


def ranks(model) -> dict[str, int]:
    return {name: module.rank for name, module in model.named_modules() if isinstance(module, LowRankLinear)}


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def outputs(family, model) -> torch.Tensor:
    with torch.no_grad():
        return family.run(model.eval())


def assert_folder_is_exact_and_dense(family, folder: Path) -> float:
    """Through safesvd: the compressed model bit for bit; plainly: the dense equivalent. Returns the plain
    error."""
    exact = from_pretrained(family.cls, folder, **family.options)
    assert torch.equal(outputs(family, exact), family.reference)
    assert ranks(exact) == ranks(family.model) and ranks(exact)
    assert not hasattr(exact.config, "safesvd")  # it describes the folder, not the model
    dense = family.cls.from_pretrained(folder, **family.options)
    assert not ranks(dense) and json.loads((folder / "config.json").read_text())["safesvd"]["ranks"] == ranks(
        family.model
    )
    error = relative(outputs(family, dense), family.reference)
    assert error < 1e-5
    return error


def test_save_pretrained_then_from_pretrained_is_exact_and_plain_hf_gives_the_dense_equivalent(
    family, tmp_path
):
    assert any(
        key.endswith(".first.weight") for key in family.model.state_dict()
    )  # state_dict() keeps the factors
    given = family.result if family.model is family.result.model else family.model
    save_pretrained(given, tmp_path / "folder")
    dense_error = assert_folder_is_exact_and_dense(family, tmp_path / "folder")
    manifest = json.loads((tmp_path / "folder/safesvd/manifest.json").read_text())
    assert manifest["ratio"] == 0.5 and manifest["recipe"]["name"] == "safe-svd"
    # what HF alone writes for a compressed model: factor keys, which a plain reload re-randomises
    type(family.model).save_pretrained(family.model, tmp_path / "hf-alone")
    random_error = relative(
        outputs(family, family.cls.from_pretrained(tmp_path / "hf-alone", **family.options)), family.reference
    )
    assert dense_error < 1e-3 * random_error


def test_the_models_own_save_pretrained_is_safe_sharded_and_after_deepcopy(family, tmp_path):
    family.model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert len(list((tmp_path / "sharded").glob("model-*-of-*.safetensors"))) > 1
    assert (tmp_path / "sharded/model.safetensors.index.json").is_file()
    assert_folder_is_exact_and_dense(family, tmp_path / "sharded")
    twin = copy.deepcopy(family.model).to("cpu")
    assert twin.save_pretrained.model is twin  # the routing follows the copy
    with torch.no_grad():
        next(p for n, p in twin.named_parameters() if n.endswith("second.bias")).add_(
            0.5
        )  # factors stay balanced
    twin.save_pretrained(tmp_path / "twin")
    reloaded = from_pretrained(family.cls, tmp_path / "twin", **family.options)
    assert torch.equal(outputs(family, reloaded), outputs(family, twin))
    assert not torch.equal(outputs(family, reloaded), family.reference)


def test_a_model_reloaded_by_load_compressed_saves_through_safesvd_too(tmp_path):
    torch.manual_seed(0)
    original = tiny_scot_like()
    original.save_pretrained(tmp_path / "dense-checkpoint")  # not compressed: HF's own save
    result = compress(original, batches(), ratio=0.5, adapter="transformers")
    save_compressed(result, tmp_path / "compressed.safetensors")
    fresh = load_compressed(
        ScOTLike.from_pretrained(tmp_path / "dense-checkpoint"), tmp_path / "compressed.safetensors"
    )
    fresh.save_pretrained(tmp_path / "folder")
    batch = batches(1)[0]
    with torch.no_grad():
        reference = result.model(**batch).output
        assert torch.equal(from_pretrained(ScOTLike, tmp_path / "folder")(**batch).output, reference)
        assert relative(ScOTLike.from_pretrained(tmp_path / "folder")(**batch).output, reference) < 1e-5


def test_push_to_hub_uploads_a_folder_that_reloads_both_ways(monkeypatch, tmp_path):
    hub = pytest.importorskip("transformers.utils.hub")
    if not hasattr(hub, "hf_api") or not hasattr(hub, "create_and_tag_model_card"):
        pytest.skip("this transformers pushes through other functions (the test intercepts transformers 5's)")
    uploaded = tmp_path / "uploaded"

    def commit(repo_id, operations, **options):  # what the Hub would receive, file by file
        for operation in operations:
            (uploaded / operation.path_in_repo).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(operation.path_or_fileobj, uploaded / operation.path_in_repo)

    api = SimpleNamespace(
        create_repo=lambda repo_id, **options: SimpleNamespace(repo_id=repo_id), create_commit=commit
    )
    card = SimpleNamespace(save=lambda path: Path(path).write_text("card"))
    monkeypatch.setattr(hub, "_hf_api", api)
    monkeypatch.setattr(hub, "create_and_tag_model_card", lambda *args, **options: card)
    family = compressed("scot-like")
    family.model.push_to_hub("me/scot-like-0.5", max_shard_size="50KB")
    assert (uploaded / "safesvd/model.safetensors").is_file() and (uploaded / "README.md").is_file()
    assert_folder_is_exact_and_dense(family, uploaded)


def test_half_precision_round_trip(tmp_path):
    torch.manual_seed(0)
    result = compress(small_vit(), batches(), ratio=0.5, adapter="transformers")
    half = copy.deepcopy(result.model.vit).half()
    batch = {"pixel_values": batches(1)[0]["pixel_values"].half()}
    family = SimpleNamespace(
        model=half,
        cls=ViTModel,
        options={"add_pooling_layer": False},
        run=lambda m: vit_tokens(m, batch),
        reference=vit_tokens(half, batch).detach(),
    )
    half.save_pretrained(tmp_path / "half")
    # the dtype as HF takes it (transformers 4 loads float32 unless asked)
    reloaded = from_pretrained(ViTModel, tmp_path / "half", add_pooling_layer=False, dtype=torch.float16)
    assert reloaded.dtype == torch.float16 and torch.equal(outputs(family, reloaded), family.reference)
    dense = ViTModel.from_pretrained(tmp_path / "half", add_pooling_layer=False, dtype=torch.float16)
    assert relative(outputs(family, dense), family.reference) < 5e-3


def test_folders_that_disagree_and_options_safesvd_cannot_honour_are_refused(tmp_path):
    family = compressed("scot-like")
    model, folder = family.model, tmp_path / "folder"
    model.save_pretrained(folder)
    layer, rank = next(iter(ranks(model).items()))
    config = json.loads((folder / "config.json").read_text())
    config["safesvd"]["ranks"][layer] = rank + 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=f"layer '{layer}' has rank {rank + 1} in config.json but {rank}"):
        from_pretrained(ScOTLike, folder)
    model.save_pretrained(folder)
    dense = ScOTLike.from_pretrained(folder)  # a dense fine-tune saved over the folder, its config entry kept
    with torch.no_grad():
        dense.get_submodule(layer).weight.add_(0.01)
    dense.save_pretrained(folder)
    with pytest.raises(ConfigError, match=f"dense weights of layer '{layer}' differ from its factors"):
        from_pretrained(ScOTLike, folder)
    shutil.rmtree(folder / "safesvd")
    with pytest.raises(ConfigError, match="which is missing"):
        from_pretrained(ScOTLike, folder)
    ScOTLike(model.config).save_pretrained(tmp_path / "dense")
    with pytest.raises(ConfigError, match="holds no compressed model .* loads with cls.from_pretrained"):
        from_pretrained(ScOTLike, tmp_path / "dense")
    with pytest.raises(ConfigError, match="not a local folder.*snapshot_download"):
        from_pretrained(ScOTLike, "me/not-here")
    with pytest.raises(ConfigError, match="push_to_hub=.*refused.*call model.push_to_hub"):
        model.save_pretrained(tmp_path / "pushed", push_to_hub=True)
    with pytest.raises(ConfigError, match="state_dict=.*refused"):
        save_pretrained(model, tmp_path / "given", state_dict=model.state_dict())
    with pytest.raises(ConfigError, match="takes a Hugging Face PreTrainedModel.*save_compressed"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "linear")
    with pytest.raises(ConfigError, match="got ViTOperator; save its Hugging Face part instead: model.vit"):
        save_pretrained(small_vit(), tmp_path / "wrapped")


def test_a_factored_pointwise_convolution_gets_its_dense_module_from_the_config(tmp_path):
    from transformers import PretrainedConfig, PreTrainedModel

    class PointwiseConfig(PretrainedConfig):
        model_type = "safesvd-pointwise-test"

        def __init__(self, channels: int = 12, **options):
            super().__init__(**options)
            self.channels = channels

    class Pointwise(PreTrainedModel):  # a 1×1 convolution and a linear map, both compressible
        config_class = PointwiseConfig

        def __init__(self, config):
            super().__init__(config)
            self.mix = torch.nn.Conv2d(config.channels, config.channels, 1)
            self.head = torch.nn.Linear(config.channels, config.channels)
            self.post_init()

        def forward(self, x):
            return self.head(torch.relu(self.mix(x)).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    torch.manual_seed(0)
    data = [(torch.randn(4, 12, 5, 5), torch.randn(4, 12, 5, 5)) for _ in range(2)]
    result = compress(Pointwise(PointwiseConfig()).eval(), data, ratio=0.6)
    assert result.model.mix.channel_dim == 1  # the convolution is factored
    save_pretrained(result, tmp_path / "pointwise")
    with torch.no_grad():
        reference = result.model(data[0][0])
        assert torch.equal(from_pretrained(Pointwise, tmp_path / "pointwise")(data[0][0]), reference)
        dense = Pointwise.from_pretrained(tmp_path / "pointwise")
        assert isinstance(dense.mix, torch.nn.Conv2d) and relative(dense(data[0][0]), reference) < 1e-5
