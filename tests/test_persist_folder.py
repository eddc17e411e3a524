"""The compressed-model folder: ``model.safetensors`` + ``manifest.json``, loaded all or nothing,
without ``adapter.prepare`` first; a partial load is never silent."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from safesvd_core import (
    ConfigError,
    LowRankLinear,
    PartialLoadWarning,
    compress,
    load_compressed,
    read_manifest,
    registry,
    save_compressed,
)

from test_compress import small_data, small_transformer

pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning")


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


def _unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    after = model.state_dict()
    return before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.fixture(scope="module")
def result():
    return compress(small_transformer(), small_data(), ratio=0.5)


def test_a_folder_round_trip_gives_the_same_outputs_and_a_full_manifest(result, tmp_path):
    folder = save_compressed(result, tmp_path / "run")
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.safetensors"]
    manifest = read_manifest(folder)
    assert manifest["format"] == "safesvd.manifest/1" and manifest["ratio"] == 0.5
    assert manifest["recipe"]["kind"] == "recipe" and manifest["recipe"]["options"]["alpha"] == 0.5
    assert manifest["alpha"] == 0.5 and manifest["lam"] is None and manifest["timings"]["total"] > 0
    for layer in manifest["layers"]:
        assert layer["rank"] == result.ranks[layer["name"]]
        assert layer["kept_energy"] == pytest.approx(result.kept_energy(layer["name"]))
        assert layer["rank"] is None or (set(layer["paths"]) and layer["seconds"] > 0.0)
    x = small_data()[0][0]
    with torch.no_grad():
        assert torch.equal(load_compressed(small_transformer(), folder)(x), result.model(x))


def test_kept_energy_is_the_share_of_the_squared_spectrum_kept(result):
    name = next(n for n, r in result.ranks.items() if r is not None)
    energy = result.spectra[name].pow(2)
    assert result.kept_energy(name) == pytest.approx(float(energy[: result.ranks[name]].sum() / energy.sum()))


def test_a_manifest_that_does_not_describe_the_file_is_refused(result, tmp_path):
    first = save_compressed(result, tmp_path / "first")
    other = save_compressed(compress(small_transformer(), small_data(), ratio=0.7), tmp_path / "other")
    (first / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    model = small_transformer()
    before = _state(model)
    with pytest.raises(ConfigError, match="manifest.json does not describe model.safetensors"):
        load_compressed(model, first)
    assert _unchanged(model, before)


@pytest.mark.parametrize("other", [dict(width=16), dict(depth=1)])
def test_a_folder_of_another_architecture_changes_nothing(result, tmp_path, other):
    folder = save_compressed(result, tmp_path / "run")
    model = small_transformer(**other)
    before = _state(model)
    with pytest.raises(ConfigError, match="does not match this model|does not fit this model"):
        load_compressed(model, folder)
    assert _unchanged(model, before) and not any(isinstance(m, LowRankLinear) for m in model.modules())


def test_strict_false_onto_a_deeper_model_warns_with_the_tensors_left_as_they_were(result, tmp_path):
    path = tmp_path / "model.safetensors"
    save_compressed(result, path)
    deeper = small_transformer(depth=3)
    with pytest.warns(
        PartialLoadWarning, match=r"tensor\(s\) of the model keep their current values.*blocks\.2\."
    ):
        load_compressed(deeper, path, strict=False)
    with pytest.raises(ConfigError, match="the model has .*blocks.2.* that the file lacks"):
        load_compressed(small_transformer(depth=3), path)


def test_an_output_folder_holding_another_model_is_refused_unless_overwrite(result, tmp_path):
    folder = save_compressed(result, tmp_path / "run")
    save_compressed(result, folder)  # the same model: written again
    other = compress(small_transformer(), small_data(), ratio=0.7)
    with pytest.raises(ConfigError, match="already holds another model"):
        save_compressed(other, folder)
    save_compressed(other, folder, overwrite=True)
    assert read_manifest(folder)["ratio"] == 0.7


class Vicon(nn.Module):
    """Tokens → nn.TransformerEncoder (packed attention, which the generic adapter rewrites) → tokens."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(8, 24)
        layer = nn.TransformerEncoderLayer(24, 2, 48, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.out = nn.Linear(24, 8)

    def forward(self, x):
        return self.out(self.encoder(self.embed(x)))


@pytest.mark.parametrize("form", ["folder", "model.safetensors"])
def test_a_rewritten_model_loads_onto_a_fresh_model_without_prepare(tmp_path, form):
    data = [(torch.randn(4, 5, 8), torch.randn(4, 5, 8)) for _ in range(3)]
    result = compress(Vicon().eval(), data, ratio=0.6)
    assert any(name.endswith("self_attn.in_proj") for name in result.ranks)
    where = save_compressed(result, tmp_path / form)
    fresh = Vicon().eval()
    loaded = load_compressed(fresh, where)
    with torch.no_grad():
        assert torch.allclose(loaded(data[0][0]), result.model(data[0][0]), atol=1e-6)


def test_restore_undoes_the_attention_rewrite_for_a_dense_state_dict(tmp_path):
    from safetensors.torch import load_file

    from safesvd_core import export_dense

    data = [(torch.randn(4, 5, 8), torch.randn(4, 5, 8)) for _ in range(3)]
    result = compress(Vicon().eval(), data, ratio=0.6)
    adapter = registry("model_adapter").create("generic")
    path = export_dense(result.model, tmp_path / "dense.safetensors", original=Vicon(), adapter=adapter)
    plain = Vicon().eval()
    plain.load_state_dict(load_file(str(path)))  # strict, the original architecture
    with torch.no_grad():
        assert torch.allclose(plain(data[0][0]), result.model(data[0][0]), atol=1e-5)


def test_a_damaged_manifest_is_a_clear_error(result, tmp_path):
    folder = save_compressed(result, tmp_path / "run")
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        read_manifest(folder)
    (folder / "manifest.json").write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(ConfigError, match="has format 'other/9'"):
        load_compressed(small_transformer(), folder)
