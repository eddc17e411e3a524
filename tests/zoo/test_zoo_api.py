"""The zoo API: clear errors, splits in the shared channel layout."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from safesvd_core import ConfigError
from safesvd_zoo import models


def test_unknown_model_and_split_are_config_errors():
    with pytest.raises(ConfigError, match="unknown zoo model"):
        models.load("nope")
    with pytest.raises(ConfigError, match="split must be one of"):
        models.spec("scot-ns").split("validation")


def test_relative_mse_ignores_masked_channels():
    target = torch.ones(2, 3, 4, 4)
    prediction = target.clone()
    prediction[:, 2] = 5.0
    mask = torch.tensor([[True, True, False]] * 2)
    assert float(models.relative_mse(prediction, target, mask)) == 0.0
    assert float(
        models.relative_mse(prediction, target, torch.ones(2, 3, dtype=torch.bool))
    ) == pytest.approx(16 / 3)


def test_relative_mse_infers_the_mask_from_zero_padded_targets():
    target = torch.ones(2, 3, 4, 4)
    target[:, 2] = 0.0
    prediction = target + 0.5
    mask = torch.tensor([[True, True, False]] * 2)
    assert (
        float(models.relative_mse(prediction, target))
        == float(models.relative_mse(prediction, target, mask))
        == 0.25
    )


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed here")
def test_a_missing_framework_names_its_extra():
    from safesvd_adapters.framework import MissingExtraError

    with pytest.raises(MissingExtraError, match=r"safesvd\[timm\]"):
        models.load("vit-timm")
