"""The PDE-family kind: a default physics-loss composition, metrics and the channel roles it needs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from .._field import FieldDescription, Role
from ._symmetry import SymmetryGroup

if TYPE_CHECKING:
    from torch import Tensor

    from ..kinds._interfaces import PhysicsLoss

#: A metric: ``(prediction, reference, field) -> scalar tensor`` (physics losses are metrics too).
Metric = Callable[["Tensor", "Tensor", FieldDescription], "Tensor"]


class PDEFamily(ABC):
    """One family of PDEs (incompressible Navier–Stokes, wave, ...), returned by ``safesvd_pde_families``.

    ``sobolev_order`` is the highest derivative order of the family's Sobolev loss (App. C.3);
    ``required_roles`` the channel roles a field must carry for :meth:`default_losses` and
    :meth:`metrics` to apply.
    """

    name: ClassVar[str]
    sobolev_order: ClassVar[int]
    required_roles: ClassVar[frozenset[Role]]

    @abstractmethod
    def default_losses(self) -> tuple[PhysicsLoss, ...]:
        """The physics terms of the calibration loss for this family."""

    @abstractmethod
    def metrics(self) -> dict[str, Metric]:
        """Named evaluation metrics (e.g. ``sobolev``, ``divergence-free``, ``vorticity``)."""

    def symmetries(self, field: FieldDescription) -> SymmetryGroup:
        """The maps that carry a valid state of this PDE on ``field``'s grid to another one from the
        same distribution (translations on periodic axes, reflections and axis exchanges with their
        vector-component signs), for refinement on little data. Default: none; a family declares only
        what its equations, boundaries and data keep (a Dirichlet problem: none, or reflections)."""
        return SymmetryGroup()

    def check(self, field: FieldDescription) -> None:
        """Raise :class:`~safesvd_core.ConfigError` naming every required role ``field`` lacks."""
        field.require_roles(sorted(self.required_roles), context=f"PDE family {self.name!r}")
