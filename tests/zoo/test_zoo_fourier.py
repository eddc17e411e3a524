"""The zoo FNO (``fno-ns``): its shipped weights reproduce its card, and it compresses at 0.4 with
its Fourier modes factored and its test error within 1 % of the uncompressed model's (with the NS
family, as docs/results/spectral.md measures it)."""

from __future__ import annotations

import pytest
import torch

from safesvd_core import compress

pytest.importorskip("neuralop", reason="the zoo FNO needs the neuraloperator extra")
from safesvd_zoo import fourier


def _relative_l1(prediction: torch.Tensor, target: torch.Tensor) -> float:
    dims = tuple(range(1, target.ndim))
    return float(((prediction - target).abs().sum(dims) / target.abs().sum(dims)).mean())


@pytest.fixture(scope="module")
def model():
    return fourier.load()


def test_the_shipped_weights_reproduce_the_card(model):
    card = fourier.card()
    inputs, targets = fourier.pairs("test")
    with torch.no_grad():
        error = _relative_l1(model(inputs), targets)
    assert error == pytest.approx(card["test_relative_l1"], rel=1e-3)
    assert error < card["copy_input_test_relative_l1"] / 3  # it learnt the dynamics
    assert card["fourier_parameters"] / card["parameters"] > 0.95


def test_compressed_at_0_4_with_its_modes_factored_within_1_percent(model):
    inputs, targets = fourier.pairs("calibration")  # 256 pairs (with 64 the change is about 5 %)
    calibration = [(inputs[i : i + 32], targets[i : i + 32]) for i in range(0, len(inputs), 32)]
    field = {"channels": ("u", "v"), "roles": ("velocity_x", "velocity_y"), "periodic": True}
    result = compress(
        model,
        calibration,
        ratio=0.4,
        adapter="neuraloperator",
        adapter_options={**field, "spacing": fourier.FIELD.spacing},
        family="ns-incompressible",  # without the family's Sobolev term the change is about 4 %
    )
    assert result.params_after <= 0.4 * result.params_before
    modes = {name: rank for name, rank in result.ranks.items() if ".bank.maps." in name}
    assert len(modes) == 4 * 12 * 7 and any(rank is not None for rank in modes.values())
    test_inputs, test_targets = fourier.pairs("test", steps=2)
    with torch.no_grad():
        before = _relative_l1(model(test_inputs), test_targets)
        after = _relative_l1(result.model(test_inputs), test_targets)
    assert abs(after - before) <= 0.01 * before
