"""Entry point of the built-in PDE plugin: physics losses and PDE families."""

from __future__ import annotations

from safesvd_core.plugin import PDEFamily, PhysicsLoss, hookimpl

from .conservation import Conservation
from .families import FAMILIES
from .flow import Divergence, DivergenceFree, Vorticity
from .sobolev import Sobolev


@hookimpl
def safesvd_physics_losses() -> list[type[PhysicsLoss]]:
    """The built-in physics losses."""
    return [Sobolev, Divergence, DivergenceFree, Vorticity, Conservation]


@hookimpl
def safesvd_pde_families() -> list[type[PDEFamily]]:
    """The built-in PDE families."""
    return list(FAMILIES)
