"""Dense export from Python (``export_dense``): the factors multiplied back into the original
architecture, loadable with a plain ``load_state_dict`` and giving the compressed model's outputs."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from safesvd_core import ConfigError, compress, export_dense, load_compressed, save_compressed

from test_compress import small_data, small_transformer


def test_the_dense_export_loads_into_a_plain_model_and_gives_the_compressed_outputs(tmp_path):
    result = compress(small_transformer(), small_data(), ratio=0.5)
    path = export_dense(result.model, small_transformer(), tmp_path / "dense.safetensors")
    plain = small_transformer()
    plain.load_state_dict(load_file(str(path)))  # strict, no safesvd involved
    x = small_data()[0][0]
    with torch.no_grad():
        torch.testing.assert_close(plain(x), result.model(x), rtol=1e-5, atol=1e-5)
    reloaded = load_compressed(small_transformer(), save_compressed(result, tmp_path / "folder"))
    again = export_dense(reloaded, small_transformer(), tmp_path / "again.safetensors")
    assert load_file(str(again)).keys() == load_file(str(path)).keys()


def test_the_dense_export_refuses_a_wrong_name_an_existing_file_and_another_architecture(tmp_path):
    result = compress(small_transformer(), small_data(), ratio=0.5)
    with pytest.raises(ConfigError, match="expected a .safetensors file name"):
        export_dense(result.model, small_transformer(), tmp_path / "dense.pt")
    (tmp_path / "taken.safetensors").write_text("mine")
    with pytest.raises(ConfigError, match="exists; pass overwrite=True"):
        export_dense(result.model, small_transformer(), tmp_path / "taken.safetensors")
    assert (tmp_path / "taken.safetensors").read_text() == "mine"
    with pytest.raises(ConfigError, match="has no submodule .blocks.1.query."):
        export_dense(result.model, small_transformer(depth=1), tmp_path / "other.safetensors")
    assert not (tmp_path / "other.safetensors").exists()
