"""neuraloperator adapter: the Fourier modes of FNO/TFNO are compressible layers (1-D, 2-D, 3-D).

Compressed at 0.4 with the spectral layers factored, saved and loaded exactly, exported dense into
the original class (a TFNO comes back as the dense FNO of its configuration).
"""

from __future__ import annotations

import copy

import pytest
import torch

from safesvd_core import compress, dense_model, load_compressed, registry, save_compressed

from adapter_helpers import assert_compressed, fields, optional

optional("neuralop")
from safesvd_adapters.fno import small_fno  # noqa: E402
from safesvd_adapters.fourier import FourierLayer  # noqa: E402

CASES = {  # dims, modes per axis, factorization, field shape
    "1d": (1, 16, None, (4, 3, 32)),
    "2d": (2, 6, None, (4, 3, 16, 16)),
    "3d": (3, 6, None, (2, 3, 8, 8, 8)),
    "tfno": (2, 6, "tucker", (4, 3, 16, 16)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fourier_modes_compress_save_load_and_export(case, tmp_path):
    dims, modes_per_axis, factorization, shape = CASES[case]
    torch.manual_seed(0)
    model = small_fno(dims=dims, modes=modes_per_axis, factorization=factorization)
    data = fields(shape)
    adapter = registry("model_adapter").create("neuraloperator")
    with torch.no_grad():  # the rewrite keeps the output (TFNO: its factorized weight multiplied out)
        prepared = adapter.prepare(copy.deepcopy(model))
        torch.testing.assert_close(prepared(data[0][0]), model(data[0][0]), rtol=1e-4, atol=1e-5)
    assert all(isinstance(layer, FourierLayer) for layer in prepared.fno_blocks.convs)
    names = adapter.compressible_layers(prepared)  # compress sees the prepared model
    modes = [name for name in names if ".bank.maps." in name]
    assert len(modes) == 2 * prepared.fno_blocks.convs[0].bank.modes
    cover = adapter.coverage(model)
    assert cover.fraction > 0.75 and cover.min_ratio < 0.4  # the Fourier weights are most of an FNO

    result = compress(model, data, ratio=0.4, adapter=adapter)
    with torch.no_grad():
        output = result.model(data[0][0])
    assert_compressed(result, output, shape, ratio=0.4)
    factored = [name for name in modes if result.ranks[name] is not None]
    assert factored, "no Fourier mode was factored"

    folder = tmp_path / "compressed"
    save_compressed(result, folder)
    loaded = load_compressed(copy.deepcopy(model), folder)
    with torch.no_grad():
        assert torch.equal(loaded(data[0][0]), output)  # exact: the same factors

    original = model if factorization is None else small_fno(dims=dims, modes=modes_per_axis)
    dense = dense_model(result, original)
    plain = copy.deepcopy(original)
    plain.load_state_dict(dense.state_dict())  # a plain load into the original (dense) class
    with torch.no_grad():
        torch.testing.assert_close(plain(data[0][0]), output, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dims", [1, 2])
def test_the_default_adapter_compresses_the_fourier_modes(dims, tmp_path):
    """``compress(model, pairs, ratio=0.4)`` with no adapter named: the generic adapter rewrites the
    ``SpectralConv`` layers as the neuraloperator adapter does (a 1-D FNO's ``Flattened1dConv`` skip
    reads its compressed convolution's ``out_channels``)."""
    torch.manual_seed(0)
    model = small_fno(dims=dims, modes=8, width=48)
    shape = (4, 3, 32) if dims == 1 else (4, 3, 16, 16)
    data = fields(shape)
    result = compress(model, data, ratio=0.4)
    factored = [name for name, rank in result.ranks.items() if ".bank.maps." in name and rank is not None]
    assert factored, "no Fourier mode was factored"
    with torch.no_grad():
        output = result.model(data[0][0])
    assert_compressed(result, output, shape, ratio=0.4)
    save_compressed(result, tmp_path / "compressed")
    loaded = load_compressed(copy.deepcopy(model), tmp_path / "compressed")
    with torch.no_grad():
        assert torch.equal(loaded(data[0][0]), output)
    plain = copy.deepcopy(model)
    plain.load_state_dict(dense_model(result, model).state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain(data[0][0]), output, rtol=1e-4, atol=1e-5)


def test_dropped_modes_save_load_and_export(tmp_path):
    """Constant fields (through the pointwise lifting, without a grid embedding, still constant)
    leave every mode but k = 0 without input: the greedy drops them (rank 0), and the model saves,
    loads and exports with them dropped."""
    torch.manual_seed(0)
    model = (
        optional("neuralop.models")
        .FNO(
            n_modes=(16,),
            in_channels=3,
            out_channels=3,
            hidden_channels=32,
            n_layers=2,
            positional_embedding=None,
        )
        .eval()
    )
    inputs = torch.randn(24, 3, 1).expand(24, 3, 32).contiguous()
    data = [(inputs[i : i + 4], torch.randn(4, 3, 32)) for i in range(0, 24, 4)]
    result = compress(model, data, ratio=0.75)
    dropped = [name for name, rank in result.ranks.items() if rank == 0]
    assert dropped, "no mode was dropped"
    folder = tmp_path / "compressed"
    save_compressed(result, folder)
    loaded = load_compressed(copy.deepcopy(model), folder)
    with torch.no_grad():
        output = result.model(inputs[:4])
        assert torch.equal(loaded(inputs[:4]), output)
        plain = copy.deepcopy(model)
        plain.load_state_dict(dense_model(result, model).state_dict())
        torch.testing.assert_close(plain(inputs[:4]), output, rtol=1e-4, atol=1e-5)


def test_a_coarse_grid_uses_the_central_modes_as_spectral_conv_does():
    torch.manual_seed(0)
    model = small_fno(modes=12)
    adapter = registry("model_adapter").create("neuraloperator")
    prepared = adapter.prepare(copy.deepcopy(model))
    coarse = torch.randn(2, 3, 8, 8)  # fewer Fourier coefficients than the 12 × 7 kept modes
    with torch.no_grad():
        torch.testing.assert_close(prepared(coarse), model(coarse), rtol=1e-4, atol=1e-5)


def test_separable_spectral_convs_are_skipped_with_the_reason():
    models = optional("neuralop.models")
    model = models.FNO(
        n_modes=(4, 4), in_channels=2, out_channels=2, hidden_channels=8, n_layers=1, separable=True
    )
    adapter = registry("model_adapter").create("neuraloperator")
    assert "separable" in adapter.skipped_layers(model)["fno_blocks.convs.0"]
    assert not any(".bank." in name for name in adapter.compressible_layers(adapter.prepare(model)))
