"""The bundled ns2d-transformer: loads, reproduces its recorded MSE, beats copy-the-input by ≥ 3×."""

from __future__ import annotations

import torch

from safesvd_zoo import models, reference

from conftest import tolerance


def test_reference_reproduces_its_card_and_beats_copy_by_three():
    card, model = models.card(reference.NAME), models.load(reference.NAME)
    loss = reference.test_loss(model)
    inputs, targets = reference.split("test")
    copy = float(torch.mean((inputs - targets) ** 2))
    assert abs(loss - card["test_mse"]) <= tolerance(card) * card["test_mse"]
    assert abs(copy - card["copy_input_test_mse"]) <= tolerance(card) * card["copy_input_test_mse"]
    assert copy >= 3 * loss
