"""LowRankLinear and saving/loading compressed models."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, strategies as st

from safesvd_core import ConfigError, LowRankLinear, compress, load_compressed, save_compressed
from safesvd_zoo.operator import FieldTransformer, OperatorConfig


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6), st.booleans())
def test_forward_equals_the_dense_product(m, n, k, bias):
    k = min(k, m, n)
    first, second = torch.randn(m, k), torch.randn(k, n)
    b = torch.randn(m) if bias else None
    layer = LowRankLinear.from_factors(first, second, b)
    x = torch.randn(3, 5, n)
    expected = x @ (first @ second).T + (0 if b is None else b)
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(layer.weight, first @ second)
    assert sum(p.numel() for p in layer.parameters()) == k * (m + n) + (m if bias else 0)


def test_bad_factor_shapes_and_ranks_are_refused():
    with pytest.raises(ConfigError, match="do not chain"):
        LowRankLinear.from_factors(torch.randn(4, 2), torch.randn(3, 5), None)
    with pytest.raises(ConfigError, match="rank must lie"):
        LowRankLinear(4, 3, 5)


def test_save_and_load_round_trip(tmp_path):
    def fresh():
        torch.manual_seed(0)
        return FieldTransformer(OperatorConfig(channels=2, size=8, patch=2, width=32, depth=2, heads=2)).eval()

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
