"""torch-harmonics adapter: the SFNO's spherical spectral convolutions are banks of per-degree maps.

Compressed at 0.4 with the spectral layers factored (by the ``torch-harmonics`` adapter and by the
default one), saved and loaded exactly, exported dense into the original class; the rewrite keeps
the output for both operator types it reproduces, and calibration feeds each degree its orders.
"""

from __future__ import annotations

import copy

import pytest
import torch

from safesvd_core import ConfigError, compress, dense_model, load_compressed, registry, save_compressed

from adapter_helpers import assert_compressed, fields, optional

layers = optional("torch_harmonics.examples.models._layers")
models = optional("torch_harmonics.examples.models")
from safesvd_adapters.spherical import SphericalLayer  # noqa: E402

SHAPE = (4, 3, 16, 32)


def small_sfno() -> torch.nn.Module:
    torch.manual_seed(0)
    return models.SphericalFourierNeuralOperator(
        img_size=SHAPE[2:], in_chans=3, out_chans=3, embed_dim=32, num_layers=2, scale_factor=1
    ).eval()


@pytest.mark.parametrize("adapter", ["torch-harmonics", "generic"])
def test_spherical_degrees_compress_save_load_and_export(adapter, tmp_path):
    model = small_sfno()
    data = fields(SHAPE)
    chosen = registry("model_adapter").create(adapter)
    with torch.no_grad():
        prepared = chosen.prepare(copy.deepcopy(model))
        torch.testing.assert_close(prepared(data[0][0]), model(data[0][0]), rtol=1e-4, atol=1e-5)
    spectral = [module for module in prepared.modules() if isinstance(module, SphericalLayer)]
    assert len(spectral) == 2 and chosen.blocks(prepared) == ["blocks.0.global_conv", "blocks.1.global_conv"]
    degrees = [name for name in chosen.compressible_layers(prepared) if ".bank.maps." in name]
    assert len(degrees) == 2 * spectral[0].bank.modes

    result = compress(model, data, ratio=0.4, adapter=chosen)
    with torch.no_grad():
        output = result.model(data[0][0])
    assert_compressed(result, output, SHAPE, ratio=0.4)
    assert any(result.ranks[name] is not None for name in degrees), "no degree was factored"

    save_compressed(result, tmp_path / "compressed")
    loaded = load_compressed(copy.deepcopy(model), tmp_path / "compressed")
    with torch.no_grad():
        assert torch.equal(loaded(data[0][0]), output)
    plain = copy.deepcopy(model)
    plain.load_state_dict(dense_model(result, model).state_dict())  # a plain load into the SFNO
    with torch.no_grad():
        torch.testing.assert_close(plain(data[0][0]), output, rtol=1e-4, atol=1e-5)


def _conv(operator_type: str) -> torch.nn.Module:
    sht = optional("torch_harmonics")
    forward = sht.RealSHT(16, 32, lmax=8, mmax=8).float()
    inverse = sht.InverseRealSHT(16, 32, lmax=8, mmax=8).float()
    torch.manual_seed(0)
    return layers.SpectralConvS2(forward, inverse, 6, 5, operator_type=operator_type, bias=True)


@pytest.mark.parametrize("operator_type", ["driscoll-healy", "diagonal"])
def test_the_spherical_layer_keeps_the_output_hooked_or_not(operator_type):
    conv = _conv(operator_type)
    layer = SphericalLayer(conv)
    x = torch.randn(3, 6, 16, 32)
    with torch.no_grad():
        expected, residual = conv(x)
        output, kept = layer(x)
        torch.testing.assert_close(output, expected, rtol=1e-4, atol=1e-5)
        assert torch.equal(kept, residual)
        hooks = [m.register_forward_hook(lambda *args: None) for m in layer.bank.maps]
        torch.testing.assert_close(layer(x)[0], expected, rtol=1e-4, atol=1e-5)
    for hook in hooks:
        hook.remove()
    modes = 8 if operator_type == "driscoll-healy" else 64
    assert layer.bank.modes == modes and torch.equal(layer.weight, conv.weight.detach())


def test_calibration_sees_each_degree_on_its_orders_only():
    """Degree l has orders m ≤ l: its map is called on those rows alone (B · (l + 1) rows)."""
    layer = SphericalLayer(_conv("driscoll-healy"))
    rows: dict[int, int] = {}
    for degree, module in enumerate(layer.bank.maps):
        module.register_forward_hook(
            lambda module, args, out, degree=degree: rows.__setitem__(degree, args[0].shape[:-1].numel())
        )
    with torch.no_grad():
        layer(torch.randn(3, 6, 16, 32))
    assert rows == {degree: 3 * (degree + 1) for degree in range(8)}


def test_a_block_diagonal_operator_is_refused():
    with pytest.raises(ConfigError, match="block-diagonal"):
        SphericalLayer(_conv("block-diagonal"))
