"""The built-in PDE families (App. C.3): Sobolev order, required roles and metrics of each."""

from __future__ import annotations

from typing import ClassVar

import attrs

from safesvd_core.plugin import (
    FieldDescription,
    Metric,
    PDEFamily,
    PhysicsLoss,
    Role,
    SymmetryGroup,
    one_of,
    periodic_square,
)

from .conservation import Conservation
from .flow import Divergence, DivergenceFree, Vorticity
from .sobolev import Sobolev


@attrs.frozen(kw_only=True)
class _Family(PDEFamily):
    """Shared behaviour: the calibration loss is the family's Sobolev loss (``p`` configurable).

    Metrics are ``sobolev`` plus the family's physics metrics. Velocity families also require a
    velocity component along every grid axis (so a 3-D field needs ``velocity_z``).
    """

    p: int = attrs.field(default=1, validator=one_of((1, 2)))

    requires_velocity: ClassVar[bool] = False

    def sobolev(self) -> Sobolev:
        """The Sobolev loss of this family's order."""
        return Sobolev(order=self.sobolev_order, p=self.p)

    def default_losses(self) -> tuple[PhysicsLoss, ...]:
        return (self.sobolev(),)

    def physics_metrics(self) -> tuple[PhysicsLoss, ...]:
        """The family-specific metrics beyond the Sobolev loss."""
        return ()

    def metrics(self) -> dict[str, Metric]:
        return {loss.name: loss for loss in (self.sobolev(), *self.physics_metrics())}

    def check(self, field: FieldDescription) -> None:
        super().check(field)
        if self.requires_velocity:
            field.velocity_channels()


@attrs.frozen(kw_only=True)
class IncompressibleNavierStokes(_Family):
    """Incompressible Navier–Stokes: order 2; divergence-free and vorticity metrics."""

    name: ClassVar[str] = "ns-incompressible"
    sobolev_order: ClassVar[int] = 2
    required_roles: ClassVar[frozenset[Role]] = frozenset({Role.VELOCITY_X, Role.VELOCITY_Y})
    requires_velocity: ClassVar[bool] = True

    def physics_metrics(self) -> tuple[PhysicsLoss, ...]:
        return (DivergenceFree(), Vorticity())

    def symmetries(self, field: FieldDescription) -> SymmetryGroup:
        """Decaying turbulence on a fully periodic grid (no forcing, isotropic initial fields): every
        translation, each axis's reflection (its velocity component changes sign) and the exchange of
        equal axes (their components exchanged). Walls or other boundaries: none."""
        return periodic_square(field)


@attrs.frozen(kw_only=True)
class CompressibleEuler(_Family):
    """Compressible Euler: order 1; divergence residual, vorticity and conservation metrics.

    ``divergence-free`` is not a metric here: compressible flow is not divergence-free.
    """

    name: ClassVar[str] = "euler-compressible"
    sobolev_order: ClassVar[int] = 1
    required_roles: ClassVar[frozenset[Role]] = frozenset({Role.DENSITY, Role.VELOCITY_X, Role.PRESSURE})
    requires_velocity: ClassVar[bool] = True

    def physics_metrics(self) -> tuple[PhysicsLoss, ...]:
        return (Divergence(), Vorticity(), Conservation())


@attrs.frozen(kw_only=True)
class CompressibleNavierStokes(CompressibleEuler):
    """Compressible Navier–Stokes: as compressible Euler (order 1, same metrics)."""

    name: ClassVar[str] = "ns-compressible"


@attrs.frozen(kw_only=True)
class Wave(_Family):
    """Wave equation: order 1 on the wave amplitude (a ``scalar`` channel)."""

    name: ClassVar[str] = "wave"
    sobolev_order: ClassVar[int] = 1
    required_roles: ClassVar[frozenset[Role]] = frozenset({Role.SCALAR})

    def symmetries(self, field: FieldDescription) -> SymmetryGroup:
        """The wave equation is isotropic: on a fully periodic grid every translation, reflection and
        exchange of equal axes (a scalar amplitude: no sign changes). Other boundaries: none."""
        return periodic_square(field)


@attrs.frozen(kw_only=True)
class ShallowWater(_Family):
    """Shallow water: order 1 on the water height; mass-conservation metric."""

    name: ClassVar[str] = "shallow-water"
    sobolev_order: ClassVar[int] = 1
    required_roles: ClassVar[frozenset[Role]] = frozenset({Role.WATER_HEIGHT})

    def physics_metrics(self) -> tuple[PhysicsLoss, ...]:
        return (Conservation(quantities=("mass",)),)


@attrs.frozen(kw_only=True)
class DiffusionReaction(_Family):
    """Diffusion–reaction: order 2 on the ``concentration`` channels."""

    name: ClassVar[str] = "diffusion-reaction"
    sobolev_order: ClassVar[int] = 2
    required_roles: ClassVar[frozenset[Role]] = frozenset({Role.CONCENTRATION})


#: Every built-in family, in the order of the paper's table.
FAMILIES: tuple[type[PDEFamily], ...] = (
    IncompressibleNavierStokes,
    CompressibleEuler,
    CompressibleNavierStokes,
    Wave,
    ShallowWater,
    DiffusionReaction,
)
