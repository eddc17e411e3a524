"""Every built-in model adapter runs the shipped conformance suite on a tiny model of its family.

Adapters whose framework cannot be imported here skip with the import error as the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from safesvd_core import FieldDescription, Role
from safesvd_core.plugin import ModelAdapter
from safesvd_core.testing.adapters import ModelAdapterConformance

from adapter_helpers import fields, optional

pytestmark = pytest.mark.filterwarnings(
    "ignore:enable_nested_tensor is True:UserWarning", "ignore:The PyTorch API of nested tensors:UserWarning"
)


def trajectories(batches: list[Any]) -> list[Any]:
    """Two-step trajectory items of one-step ``batches``: the target and its batch-reversed copy as states
    1 and 2 (``(input, (B, 2, …), …)`` tuples, or ``labels`` of ``(B, 2, …)`` in dict batches)."""

    def two(target: torch.Tensor) -> torch.Tensor:
        return torch.stack([target, target.flip(0)], dim=1)

    return [
        {**batch, "labels": two(batch["labels"])}
        if isinstance(batch, dict)
        else (batch[0], two(batch[1]), *batch[2:])
        for batch in batches
    ]


class NeedsFramework(ModelAdapterConformance):
    """Skips every test when ``framework`` cannot be imported (each test starts by making the adapter)."""

    framework: ClassVar[str]

    def make_adapter(self) -> ModelAdapter:
        optional(self.framework)
        return super().make_adapter()


# -- generic --------------------------------------------------------------------------------------


class TestGenericPointwiseConvs(ModelAdapterConformance):
    """A channel MLP of 1×1 convolutions on 2-D fields, with a field description and domain labels."""

    plugin_name: ClassVar[str] = "generic"
    options: ClassVar[Mapping[str, Any]] = {
        "field_description": FieldDescription(
            channels=("h", "u", "v"),
            spacing=(0.1, 0.1),
            periodic=(True, True),
            roles=(Role.WATER_HEIGHT, Role.VELOCITY_X, Role.VELOCITY_Y),
        ),
    }

    def make_model(self) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, 24, 1), nn.GELU(), nn.Conv2d(24, 24, 1), nn.GELU(), nn.Conv2d(24, 3, 1)
        ).eval()

    def make_batches(self) -> list[Any]:
        return [(x, y, domain) for (x, y), domain in zip(fields((2, 3, 8, 8)), ("a", "b"))]

    def make_trajectories(self) -> list[Any]:
        return trajectories(self.make_batches())


class Vicon(nn.Module):
    """VICON-like: tokens → nn.TransformerEncoder (packed attention) → tokens."""

    def __init__(self, width: int = 24, depth: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(8, width)
        layer = nn.TransformerEncoderLayer(width, 2, 2 * width, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth)
        self.out = nn.Linear(width, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.encoder(self.embed(x)))


class TestGenericTransformerEncoder(ModelAdapterConformance):
    """nn.MultiheadAttention rewritten by prepare; the encoder layers as blocks."""

    plugin_name: ClassVar[str] = "generic"
    options: ClassVar[Mapping[str, Any]] = {"block_names": ["encoder.layers.0", "encoder.layers.1"]}

    def make_model(self) -> nn.Module:
        return Vicon().eval()

    def make_batches(self) -> list[Any]:
        return fields((3, 5, 8))

    def make_trajectories(self) -> list[Any]:
        return trajectories(self.make_batches())


# -- transformers ---------------------------------------------------------------------------------


def poseidon_batches(masked_channel: int | None = None) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    out = []
    for _ in range(2):
        batch = {
            "pixel_values": torch.randn(2, 4, 16, 16, generator=generator),
            "labels": torch.randn(2, 4, 16, 16, generator=generator),
            "time": torch.rand(2, generator=generator),
        }
        if masked_channel is not None:
            batch["pixel_mask"] = torch.zeros(2, 4, 16, 16, dtype=torch.bool)
            batch["pixel_mask"][:, masked_channel] = True
        out.append(batch)
    return out


_POSEIDON_CHANNELS = {
    "channels": ["rho", "u", "v", "p"],
    "roles": ["density", "velocity_x", "velocity_y", "pressure"],
    "periodic": True,
}


class TestTransformersViT(NeedsFramework):
    framework: ClassVar[str] = "transformers"
    plugin_name: ClassVar[str] = "transformers"
    options: ClassVar[Mapping[str, Any]] = _POSEIDON_CHANNELS

    def make_model(self) -> nn.Module:
        from safesvd_adapters.hf_models import small_vit

        return small_vit()

    def make_batches(self) -> list[Any]:
        return poseidon_batches()

    def make_trajectories(self) -> list[Any]:
        return trajectories(self.make_batches())


class TestTransformersSwinv2(NeedsFramework):
    """A Poseidon-scOT-shaped U-Net of HF Swinv2 layers, the pressure channel masked."""

    framework: ClassVar[str] = "transformers"
    plugin_name: ClassVar[str] = "transformers"
    options: ClassVar[Mapping[str, Any]] = {**_POSEIDON_CHANNELS, "masked": ["p"]}

    def make_model(self) -> nn.Module:
        from safesvd_adapters.hf_models import small_scot

        return small_scot(embed_dim=16, heads=(2, 2))

    def make_batches(self) -> list[Any]:
        return poseidon_batches(masked_channel=3)

    def make_trajectories(self) -> list[Any]:
        return trajectories(self.make_batches())


class TestTransformersScOT(NeedsFramework):
    """The ScOT stand-in shaped like Poseidon-T (tiny width): its loss from its config, ``(B, C)`` masks."""

    framework: ClassVar[str] = "transformers"
    plugin_name: ClassVar[str] = "transformers"
    options: ClassVar[Mapping[str, Any]] = _POSEIDON_CHANNELS

    def make_model(self) -> nn.Module:
        from safesvd_adapters.scot_like import poseidon_t_like

        return poseidon_t_like(image_size=32, window_size=4)

    def make_batches(self) -> list[Any]:
        generator = torch.Generator().manual_seed(1)
        return [
            {
                "pixel_values": torch.randn(2, 4, 32, 32, generator=generator),
                "labels": torch.randn(2, 4, 32, 32, generator=generator),
                "time": torch.rand(2, generator=generator),
                "pixel_mask": torch.tensor([[False, False, False, True]] * 2),
            }
            for _ in range(2)
        ]

    def make_trajectories(self) -> list[Any]:
        return trajectories(self.make_batches())


# -- neuraloperator -------------------------------------------------------------------------------


class TestNeuralOperator(NeedsFramework):
    framework: ClassVar[str] = "neuralop"
    plugin_name: ClassVar[str] = "neuraloperator"

    def make_model(self) -> nn.Module:
        from safesvd_adapters.fno import small_fno

        return small_fno(modes=4, width=8)

    def make_batches(self) -> list[Any]:
        return fields((2, 3, 16, 16))

    def make_trajectories(self) -> list[Any]:
        return trajectories(self.make_batches())

    def compression_ratio(self, adapter: ModelAdapter, model: nn.Module) -> float:
        """Half of the compressible share: most of an FNO's weights are spectral, so 0.6 is out of reach."""
        return round(1.0 - adapter.coverage(model).fraction / 2, 3)


# -- torch-harmonics (its wheel asks for torch 2.14: the CI environment with torchvision has it) ---


class TestHarmonics(NeedsFramework):
    framework: ClassVar[str] = "torch_harmonics.examples.models"
    plugin_name: ClassVar[str] = "torch-harmonics"

    def make_model(self) -> nn.Module:
        from torch_harmonics.examples.models import SphericalFourierNeuralOperator

        return SphericalFourierNeuralOperator(
            img_size=(8, 16), in_chans=3, out_chans=3, embed_dim=8, num_layers=2, scale_factor=1
        )

    def make_batches(self) -> list[Any]:
        return fields((2, 3, 8, 16))

    def make_trajectories(self) -> list[Any]:
        return trajectories(self.make_batches())

    def compression_ratio(self, adapter: ModelAdapter, model: nn.Module) -> float:
        """Half of the compressible share (as for the FNO: most of an SFNO's weights are spectral)."""
        return round(1.0 - adapter.coverage(model).fraction / 2, 3)


# -- timm and the_well (a separate CI environment has their frameworks) ---------------------------


class TestTimm(NeedsFramework):
    framework: ClassVar[str] = "timm"
    plugin_name: ClassVar[str] = "timm"
    options: ClassVar[Mapping[str, Any]] = {
        "channels": ["h", "u", "v"],
        "roles": ["water_height", "velocity_x", "velocity_y"],
    }

    def make_model(self) -> nn.Module:
        from safesvd_adapters.timm_vit import small_timm_vit

        return small_timm_vit()

    def make_batches(self) -> list[Any]:
        return fields((2, 3, 16, 16))

    def make_trajectories(self) -> list[Any]:
        return trajectories(self.make_batches())


class TestTheWell(NeedsFramework):
    framework: ClassVar[str] = "the_well.benchmark.models.avit"
    plugin_name: ClassVar[str] = "the_well"
    options: ClassVar[Mapping[str, Any]] = {
        "channels": ["rho", "u", "v", "e"],
        "roles": ["density", "velocity_x", "velocity_y", "energy"],
    }

    def make_model(self) -> nn.Module:
        from safesvd_adapters.well_avit import small_avit

        return small_avit(steps=2)

    def make_batches(self) -> list[Any]:
        """The Well's layout: ``(B, T, H, W, C)`` input and output fields."""
        generator = torch.Generator().manual_seed(1)
        return [
            {
                "input_fields": torch.randn(2, 2, 32, 32, 4, generator=generator),
                "output_fields": torch.randn(2, 1, 32, 32, 4, generator=generator),
            }
            for _ in range(2)
        ]
