"""Dense export from Python (``dense_model``, ``export_dense``): the factors multiplied back into the
original architecture, loadable with a plain ``load_state_dict`` and giving the compressed model's outputs."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from safesvd_core import (
    ConfigError,
    LowRankLinear,
    compress,
    dense_model,
    export_dense,
    load_compressed,
    save_compressed,
)

from test_compress import small_data, small_transformer


def _parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def test_the_dense_export_loads_into_a_plain_model_and_gives_the_compressed_outputs(tmp_path):
    result = compress(small_transformer(), small_data(), ratio=0.5)
    path = export_dense(result, tmp_path / "dense.safetensors", original=small_transformer())
    plain = small_transformer()
    plain.load_state_dict(load_file(str(path)))  # strict, no safesvd involved
    x = small_data()[0][0]
    with torch.no_grad():
        torch.testing.assert_close(plain(x), result.model(x), rtol=1e-5, atol=1e-5)
    reloaded = load_compressed(small_transformer(), save_compressed(result, tmp_path / "folder"))
    again = export_dense(reloaded, tmp_path / "again.safetensors")  # no original: nn.Linear layers need none
    assert load_file(str(again)).keys() == load_file(str(path)).keys()
    for key, value in load_file(str(again)).items():
        torch.testing.assert_close(value, load_file(str(path))[key], rtol=0, atol=0)


def test_dense_model_has_the_original_structure_and_outputs_and_leaves_the_input_alone():
    result = compress(small_transformer(), small_data(), ratio=0.5)
    dense = dense_model(result)
    assert not any(isinstance(module, LowRankLinear) for module in dense.modules())
    assert any(isinstance(module, LowRankLinear) for module in result.model.modules())
    assert _parameters(dense) == _parameters(small_transformer()) > result.params_after
    x = small_data()[0][0]
    with torch.no_grad():
        torch.testing.assert_close(dense(x), result.model(x), rtol=1e-5, atol=1e-5)


def test_a_replaced_convolution_needs_the_original():
    model = nn.Sequential(nn.Conv2d(6, 8, 1), nn.GELU(), nn.Conv2d(8, 6, 1))
    data = [(torch.randn(4, 6, 5, 5), torch.randn(4, 6, 5, 5)) for _ in range(3)]
    result = compress(model, data, ratio=0.5, recipe="svd")
    assert any(isinstance(module, LowRankLinear) for module in result.model.modules())
    with pytest.raises(ConfigError, match="replaced a 1×1 convolution: pass original="):
        dense_model(result)
    dense = dense_model(result, original=model)
    assert isinstance(dense[0], nn.Conv2d) and isinstance(dense[2], nn.Conv2d)
    with torch.no_grad():
        torch.testing.assert_close(dense(data[0][0]), result.model(data[0][0]), rtol=1e-5, atol=1e-5)


def test_the_dense_export_refuses_a_wrong_name_an_existing_file_and_another_architecture(tmp_path):
    result = compress(small_transformer(), small_data(), ratio=0.5)
    with pytest.raises(ConfigError, match="expected a .safetensors file name"):
        export_dense(result, tmp_path / "dense.pt")
    (tmp_path / "taken.safetensors").write_text("mine")
    with pytest.raises(ConfigError, match="exists; pass overwrite=True"):
        export_dense(result, tmp_path / "taken.safetensors")
    assert (tmp_path / "taken.safetensors").read_text() == "mine"
    with pytest.raises(ConfigError, match="has no submodule .blocks.1.query."):
        export_dense(result.model, tmp_path / "other.safetensors", original=small_transformer(depth=1))
    assert not (tmp_path / "other.safetensors").exists()
