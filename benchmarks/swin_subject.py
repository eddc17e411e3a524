"""A 3-D Swin subject of Aurora-small's size: Microsoft Aurora's ``AuroraSmall`` (113 M parameters,
20 ``Swin3DTransformerBlock``s, Perceiver encoder and decoder), random weights, on random weather.

It needs the ``aurora`` package (``microsoft-aurora``; timm, hence torchvision: the ``.venv-full``
environment of CI); :func:`available` says whether it imports. Items are ``(Batch, Batch)`` pairs
at 32 × 64 (two history steps, four pressure levels): the model's prediction plus noise as the
target, so that the calibration loss has a gradient (at the model's own prediction it has none).
"""

from __future__ import annotations

import datetime
import importlib.util
from typing import Any

import torch

SURFACE = ("2t", "10u", "10v", "msl")
STATIC = ("lsm", "z", "slt")
ATMOSPHERIC = ("z", "u", "v", "t", "q")
LEVELS = (100, 250, 500, 850)
HEIGHT, WIDTH = 32, 64


def available() -> bool:
    """Whether ``aurora`` can be imported here."""
    if importlib.util.find_spec("aurora") is None:
        return False
    try:
        import aurora  # noqa: F401
    except (ImportError, RuntimeError, OSError):  # timm or torchvision missing or broken
        return False
    return True


def build() -> torch.nn.Module:
    """``AuroraSmall`` with weights drawn from N(0, 0.02²) (off the adaLN-zero initialisation, so that
    every layer reaches the output), in eval mode."""
    import aurora

    torch.manual_seed(0)
    model = aurora.AuroraSmall()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.02)
    return model.eval()


def block_names(model: torch.nn.Module) -> list[str]:
    """The model's ``Swin3DTransformerBlock``s."""
    return [
        name for name, module in model.named_modules() if type(module).__name__ == "Swin3DTransformerBlock"
    ]


def weather(seed: int) -> Any:
    """Random weather: one sample, two history steps, at ``HEIGHT × WIDTH``."""
    import aurora

    generator = torch.Generator().manual_seed(seed)
    start = datetime.datetime(2020, 6, 1, 12)
    return aurora.Batch(
        surf_vars={name: torch.randn(1, 2, HEIGHT, WIDTH, generator=generator) for name in SURFACE},
        static_vars={name: torch.randn(HEIGHT, WIDTH, generator=generator) for name in STATIC},
        atmos_vars={
            name: torch.randn(1, 2, len(LEVELS), HEIGHT, WIDTH, generator=generator) for name in ATMOSPHERIC
        },
        metadata=aurora.Metadata(
            lat=torch.linspace(90, -90, HEIGHT),
            lon=torch.linspace(0, 360, WIDTH + 1)[:-1],
            time=(start,),
            atmos_levels=LEVELS,
        ),
    )


def items(model: torch.nn.Module, count: int, noise: float = 0.1) -> list[tuple[Any, Any]]:
    """``count`` pairs: random weather, and the model's prediction on it plus Gaussian noise."""
    from safesvd_core.plugin import map_structure

    def noisy(generator: torch.Generator, prediction: Any) -> Any:
        return map_structure(
            lambda _, leaf: (
                leaf + noise * torch.randn(leaf.shape, generator=generator)
                if isinstance(leaf, torch.Tensor) and leaf.is_floating_point() and leaf.ndim > 2
                else leaf
            ),
            prediction,
        )

    pairs = []
    for seed in range(count):
        batch = weather(seed)
        with torch.no_grad():
            prediction = model(batch)
        pairs.append((batch, noisy(torch.Generator().manual_seed(10_000 + seed), prediction)))
    return pairs
