"""Helpers of the adapter tests: optional frameworks skip with the reason they cannot import."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest
import torch


def optional(module: str) -> ModuleType:
    """Import ``module`` or skip the test with the import error as the reason (timm and the_well
    import torchvision, which fails with RuntimeError beside a mismatched torch)."""
    try:
        return importlib.import_module(module)
    except (ImportError, RuntimeError) as error:
        pytest.skip(
            allow_module_level=True,
            reason=f"{module} cannot be imported here ({type(error).__name__}: {error}); "
            f"install the matching safesvd extra (docs/adapters.md)",
        )


def fields(
    shape: tuple[int, ...], batches: int = 2, seed: int = 1
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random ``(input, target)`` pairs of ``shape``."""
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(*shape, generator=generator), torch.randn(*shape, generator=generator))
        for _ in range(batches)
    ]


def assert_compressed(
    result, batch_output: torch.Tensor, expected_shape: tuple[int, ...], ratio: float = 0.5
) -> None:
    """Shape unchanged, budget met, finite output, parameters counted exactly."""
    assert batch_output.shape == expected_shape
    assert torch.isfinite(batch_output).all()
    assert result.params_after <= result.budget == int(ratio * result.params_before)
    assert result.params_after == sum(p.numel() for p in result.model.parameters())
    assert any(rank is not None for rank in result.ranks.values())
