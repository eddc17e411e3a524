"""The enstrophy plugin meets the physics-loss contract and is found through its entry point."""

import pytest
import torch

from safesvd_core import ConfigError, FieldDescription
from safesvd_core.plugin import PluginManager
from safesvd_core.testing.physics import PhysicsLossConformance
from safesvd_enstrophy import Enstrophy


class TestEnstrophyConformance(PhysicsLossConformance):
    def make_loss(self):
        return Enstrophy()


def test_registered_through_the_entry_point():
    assert PluginManager().registry("physics_loss").get("enstrophy") is Enstrophy


def test_solid_rotation_has_enstrophy_two_omega_squared():
    field = FieldDescription.uniform(channels=("u", "v"), roles=("velocity_x", "velocity_y"), spacing=0.1)
    x, y = torch.meshgrid(*[0.1 * torch.arange(6, dtype=torch.float64)] * 2, indexing="ij")
    spinning = torch.stack([-y, x])[None]  # ω = 2, so ½ω² = 2
    assert float(Enstrophy()(spinning, torch.zeros_like(spinning), field)) == pytest.approx(2.0)


def test_needs_velocity():
    field = FieldDescription.uniform(channels=("h",), roles=("water_height",))
    with pytest.raises(ConfigError, match="velocity_x, velocity_y"):
        Enstrophy()(torch.zeros(1, 1, 5, 5), torch.zeros(1, 1, 5, 5), field)
