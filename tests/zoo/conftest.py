"""Zoo tests: the shared check of a shipped model, and optional frameworks skipped with a reason."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))
from adapter_helpers import optional  # noqa: F401 - re-exported to the zoo tests

#: Relative tolerance on a recorded test loss: same torch build, else a looser one (kernels may differ).
SAME_BUILD_RTOL, OTHER_BUILD_RTOL = 1e-6, 1e-4


def tolerance(card: dict) -> float:
    return SAME_BUILD_RTOL if card["training"]["torch"] == torch.__version__ else OTHER_BUILD_RTOL


def check_recorded(name: str) -> None:
    """``name`` loads; its recorded test loss is reproduced; it beats copy-the-input by ≥ 3×."""
    from safesvd_zoo import models

    card, model = models.card(name), models.load(name)
    assert not model.training
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    loss, copy = models.test_loss(name, model)
    assert abs(loss - card["test_loss"]) <= tolerance(card) * card["test_loss"]
    assert abs(copy - card["copy_input_test_loss"]) <= tolerance(card) * card["copy_input_test_loss"]
    assert copy >= 3 * loss
