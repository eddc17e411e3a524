"""Every built-in physics loss runs the shipped conformance suite."""

from __future__ import annotations

from typing import ClassVar

import torch

from safesvd_core import FieldDescription, Role
from safesvd_core.plugin import PhysicsLoss
from safesvd_core.testing.physics import PhysicsLossConformance
from safesvd_pde.conservation import Conservation
from safesvd_pde.finite_difference import derivative
from safesvd_pde.flow import Divergence, DivergenceFree, Vorticity
from safesvd_pde.sobolev import Sobolev


class TestSobolevOrder2L1(PhysicsLossConformance):
    def make_loss(self) -> PhysicsLoss:
        return Sobolev(order=2, p=1)


class TestSobolevOrder1L2(PhysicsLossConformance):
    def make_loss(self) -> PhysicsLoss:
        return Sobolev(order=1, p=2, weights={0: 0.5, (0, 1): 2.0})


class TestSobolevMasked1D(PhysicsLossConformance):
    grid_shape: ClassVar[tuple[int, ...]] = (11,)

    def make_loss(self) -> PhysicsLoss:
        return Sobolev(order=2)

    def field_description(self) -> FieldDescription:
        return FieldDescription(
            channels=("h", "pad"),
            roles=(Role.WATER_HEIGHT, Role.SCALAR),
            spacing=(0.5,),
            periodic=(False,),
            masked=("pad",),
        )


class TestDivergence(PhysicsLossConformance):
    def make_loss(self) -> PhysicsLoss:
        return Divergence()


class TestDivergenceFree(PhysicsLossConformance):
    def make_loss(self) -> PhysicsLoss:
        return DivergenceFree()

    def make_zero_pair(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A velocity from a random stream function is discretely divergence-free, on any boundary."""
        field = self.make_field(generator)
        description = self.field_description()
        psi = torch.randn(field[:, :1].shape, generator=generator, dtype=field.dtype)
        field[:, 0:1] = derivative(psi, (0, 1), description.spacing, description.periodic)
        field[:, 1:2] = -derivative(psi, (1, 0), description.spacing, description.periodic)
        return field, field.clone()


class TestVorticity2D(PhysicsLossConformance):
    def make_loss(self) -> PhysicsLoss:
        return Vorticity()


class TestVorticity3DImageLayout(PhysicsLossConformance):
    grid_shape: ClassVar[tuple[int, ...]] = (5, 6, 4)

    def make_loss(self) -> PhysicsLoss:
        return Vorticity()

    def field_description(self) -> FieldDescription:
        return FieldDescription(
            channels=("w", "v", "u"),
            roles=(Role.VELOCITY_Z, Role.VELOCITY_Y, Role.VELOCITY_X),
            spacing=(0.3, 0.2, 0.1),
            periodic=(True, False, True),
            axes=("z", "y", "x"),
        )


class TestConservation(PhysicsLossConformance):
    def make_loss(self) -> PhysicsLoss:
        return Conservation()

    def make_field(self, generator: torch.Generator) -> torch.Tensor:
        field = super().make_field(generator)
        field[:, 2] = field[:, 2].abs() + 0.5  # a positive density
        return field


class TestConservationOfMomentumChannels(PhysicsLossConformance):
    def make_loss(self) -> PhysicsLoss:
        return Conservation(quantities=("momentum",), derive_momentum=False)

    def field_description(self) -> FieldDescription:
        return FieldDescription(
            channels=("mx", "my", "p"),
            roles=(Role.MOMENTUM_X, Role.MOMENTUM_Y, Role.PRESSURE),
            spacing=(0.1, 0.1),
            periodic=(True, True),
        )
