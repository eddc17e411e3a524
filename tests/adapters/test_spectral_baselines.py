"""The spectral baselines of benchmarks/spectral.py: mode truncation and Tucker, on an FNO and an
SFNO prepared by their adapters (each where its framework imports)."""

from __future__ import annotations

import copy

import pytest
import torch

from safesvd_core import registry

from adapter_helpers import optional


def _prepared(kind: str):
    if kind == "fno":
        optional("neuralop")
        from safesvd_adapters.fno import small_fno

        torch.manual_seed(0)
        model, shape = small_fno(modes=6, width=16), (2, 3, 16, 16)
        adapter = "neuraloperator"
    else:
        models = optional("torch_harmonics.examples.models")
        torch.manual_seed(0)
        model = models.SphericalFourierNeuralOperator(
            img_size=(16, 32), in_chans=3, out_chans=3, embed_dim=16, num_layers=2, scale_factor=1
        )
        shape, adapter = (2, 3, 16, 32), "torch-harmonics"
    prepared = registry("model_adapter").create(adapter).prepare(copy.deepcopy(model.eval()))
    return prepared, torch.randn(*shape)


@pytest.mark.parametrize("kind", ["fno", "sfno"])
def test_mode_truncation_keeps_the_lowest_modes_within_the_budget(kind):
    from benchmarks.spectral_baselines import _mode_order, fourier_layers, kept_outside, truncate_modes

    prepared, _ = _prepared(kind)
    outside = kept_outside(prepared)
    budget = outside + (sum(p.numel() for p in prepared.parameters()) - outside) // 3
    truncated = truncate_modes(prepared, budget)
    assert sum(p.numel() for p in truncated.parameters()) <= budget
    for name, layer in fourier_layers(truncated).items():
        order = _mode_order(layer)
        kept = [index for index, module in enumerate(layer.bank.maps) if isinstance(module, torch.nn.Linear)]
        dropped = [index for index in range(layer.bank.modes) if index not in kept]
        assert kept and dropped, name
        assert max(order[kept]) <= min(order[dropped])  # nothing kept above a dropped frequency


@pytest.mark.parametrize("kind", ["fno", "sfno"])
def test_tucker_within_the_budget_and_exact_at_full_rank(kind):
    from benchmarks.spectral_baselines import fourier_layers, tucker, tucker_compress

    prepared, x = _prepared(kind)
    total = sum(p.numel() for p in prepared.parameters())
    model, params = tucker_compress(prepared, total // 2)
    assert params <= total // 2
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()
    for layer in fourier_layers(prepared).values():
        weight = layer.weight.detach()
        torch.testing.assert_close(tucker(weight, tuple(weight.shape)), weight, rtol=1e-4, atol=1e-5)
