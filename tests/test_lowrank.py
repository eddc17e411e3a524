"""LowRankLinear and saving/loading compressed models."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from safesvd_core import ConfigError, LowRankLinear, compress, load_compressed, save_compressed
from safesvd_zoo.operator import FieldTransformer, OperatorConfig


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6), st.booleans())
def test_forward_equals_the_dense_product(m, n, k, bias):
    k = min(k, m, n)
    a, b_factor = torch.randn(m, k), torch.randn(k, n)  # W' = A B: B applies first
    b = torch.randn(m) if bias else None
    layer = LowRankLinear.from_factors(b_factor, a, b)
    x = torch.randn(3, 5, n)
    expected = x @ (a @ b_factor).T + (0 if b is None else b)
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(layer.weight, a @ b_factor)
    assert sum(p.numel() for p in layer.parameters()) == k * (m + n) + (m if bias else 0)


def test_bad_factor_shapes_and_ranks_are_refused():
    with pytest.raises(ConfigError, match="do not chain"):
        LowRankLinear.from_factors(torch.randn(3, 5), torch.randn(4, 2), None)
    with pytest.raises(ConfigError, match="rank must lie"):
        LowRankLinear(4, 3, 5)


def test_save_and_load_round_trip(tmp_path):
    def fresh():
        torch.manual_seed(0)
        return FieldTransformer(
            OperatorConfig(channels=2, size=8, patch=2, width=32, depth=2, heads=2)
        ).eval()

    data = [(torch.randn(4, 2, 8, 8), torch.randn(4, 2, 8, 8))]
    result = compress(fresh(), data, ratio=0.5)
    path = tmp_path / "model.safetensors"
    save_compressed(result, path)
    loaded = load_compressed(fresh(), path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(data[0][0]), result.model(data[0][0]))
    assert sum(p.numel() for p in loaded.parameters()) == result.params_after


def test_loading_a_foreign_file_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(path))
    with pytest.raises(ConfigError, match="not a safesvd compressed model"):
        load_compressed(torch.nn.Linear(1, 1), path)


@pytest.mark.parametrize("conv", [torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d])
def test_pointwise_convolutions_compress_as_linear_maps(conv):
    torch.manual_seed(0)
    shape = {torch.nn.Conv1d: (4, 16, 9), torch.nn.Conv2d: (4, 16, 5, 6), torch.nn.Conv3d: (2, 16, 3, 4, 5)}[
        conv
    ]
    model = torch.nn.Sequential(conv(16, 48, 1), torch.nn.GELU(), conv(48, 16, 1))
    data = [(torch.randn(*shape), torch.randn(*shape)) for _ in range(2)]
    result = compress(model, data, ratio=0.6)
    assert result.params_after <= 0.6 * result.params_before
    out = result.model(data[0][0])
    assert out.shape == data[0][1].shape and torch.isfinite(out).all()
    replaced = [m for m in result.model.modules() if isinstance(m, LowRankLinear)]
    assert replaced and all(m.channel_dim == 1 for m in replaced)
    # a full-rank channels-first LowRankLinear equals the convolution it replaces
    layer = model[0]
    weight = layer.weight.reshape(48, 16)
    full = LowRankLinear.from_factors(torch.eye(16), weight, layer.bias.detach(), channel_dim=1)
    with torch.no_grad():
        torch.testing.assert_close(full(data[0][0]), layer(data[0][0]), rtol=1e-5, atol=1e-5)


def test_non_pointwise_convolutions_are_not_compressible():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.Conv2d(4, 8, 1), torch.nn.Conv2d(8, 4, 1, groups=2)
    )
    data = [(torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6))]
    from safesvd_core import registry

    assert registry("model_adapter").create("generic").compressible_layers(model) == ["1"]
    with pytest.raises(ConfigError, match="selected none of the 1 linear layers .*\\(include \\['0'\\]"):
        compress(model, data, ratio=0.9, adapter_options={"include": ["0"]})
    from safesvd_core.plugin import linear_map

    with pytest.raises(ConfigError, match="kernel size"):
        linear_map(model, "0")
    with pytest.raises(ConfigError, match="groups=2"):
        linear_map(model, "2")
