"""2-D viscous Burgers ``u_t + (u·∇)u = ν∇²u`` for ``u = (u, v)`` on the periodic square ``[0, 2π)²``.

Second-order central differences (advective form) and SSP-RK3 with a step below the advective
and diffusive limits; ``ν`` keeps the cell Reynolds number ``|u| h / ν`` near 2 at 32², so the
central scheme does not ring. Initial velocities are random smooth fields.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch
from torch import Tensor

from safesvd_core.plugin import FieldDescription, Role, positive

from ._generator import Generator, non_negative, random_smooth
from ._stencils import gradient, laplacian
from ._time import integrate


@attrs.frozen(kw_only=True)
class BurgersGenerator(Generator):
    """Velocity pairs ``(u, v)`` with RMS ``amplitude`` and energy near wavenumber ``peak``."""

    name: ClassVar[str] = "burgers"

    spin_up: float = attrs.field(default=0.2, validator=non_negative)
    lead_time: float = attrs.field(default=1.0, validator=positive)
    viscosity: float = attrs.field(default=0.15, validator=positive)
    amplitude: float = attrs.field(default=0.5, validator=positive)
    peak: float = attrs.field(default=2.0, validator=positive)
    cfl: float = attrs.field(default=0.5, validator=positive)

    @property
    def spacing(self) -> float:
        return 2 * math.pi / self.size

    def field(self) -> FieldDescription:
        return FieldDescription.uniform(
            channels=("u", "v"), roles=(Role.VELOCITY_X, Role.VELOCITY_Y), spacing=self.spacing, periodic=True
        )

    def initial(self, generator: torch.Generator) -> Tensor:
        parts = [random_smooth(generator, self.samples, self.size, self.peak) for _ in range(2)]
        return self.amplitude * torch.stack(parts, dim=1)

    def rhs(self, state: Tensor) -> Tensor:
        """``ν∇²u − (u·∇)u``."""
        dx, dy = gradient(state, self.spacing)
        return self.viscosity * laplacian(state, self.spacing) - state[:, :1] * dx - state[:, 1:] * dy

    def advance(self, state: Tensor, duration: float) -> Tensor:
        h = self.spacing

        def dt(s: Tensor) -> float:
            return self.cfl * min(h / float(s.abs().max()), 0.25 * h * h / self.viscosity)

        return integrate(self.rhs, state, duration, dt)


__all__ = ["BurgersGenerator"]
