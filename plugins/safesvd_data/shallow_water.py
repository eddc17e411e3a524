"""2-D shallow water: the radial dam break of PDEBench on ``[−2.5, 2.5]²`` with outflow edges.

``h_t + ∇·(hu) = 0``, ``(hu)_t + ∇·(hu⊗u + g h²/2 I) = 0``; finite volumes
(:mod:`._finite_volume`). Still water of depth 1 holds a column of depth ``inner`` inside a
circle; each sample draws the radius (PDEBench's U(0.3, 0.7)), the column depth and the centre.
Observed channels: height ``h`` and velocity ``u, v`` (PDEBench stores ``h`` alone, which does not
determine the future).
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
from torch import Tensor

from safesvd_core.plugin import FieldDescription, Role, positive

from . import _finite_volume
from ._generator import Generator, cell_centres, non_negative, uniform

#: Half the side of the square domain, as in PDEBench.
HALF_WIDTH = 2.5


@attrs.frozen(kw_only=True)
class ShallowWaterLaw:
    """The shallow-water flux and wave speed ``|u_n| + √(g h)`` for ``q = (h, hu, hv)``."""

    gravity: float = attrs.field(default=1.0, validator=positive)

    def flux(self, q: Tensor, axis: int) -> Tensor:
        flux = q * (q[:, 1 + axis] / q[:, 0]).unsqueeze(1)
        flux[:, 1 + axis] += 0.5 * self.gravity * q[:, 0] ** 2
        return flux

    def speed(self, q: Tensor, axis: int) -> Tensor:
        return (q[:, 1 + axis] / q[:, 0]).abs() + torch.sqrt(self.gravity * q[:, 0])


@attrs.frozen(kw_only=True)
class ShallowWaterGenerator(Generator):
    """Radial dam-break pairs ``(h, u, v)``.

    Columns are ``inner`` = U(``depth_low``, ``depth_high``) deep (PDEBench: 2), radius
    U(0.3, 0.7), centred within ``offset`` of the origin. With the defaults the front stays
    inside the domain up to ``spin_up + lead_time`` (mass drifts by < 1e-6 relative, the outflow
    of the scheme's numerical precursor).
    """

    name: ClassVar[str] = "shallow_water"

    spin_up: float = attrs.field(default=0.1, validator=non_negative)
    lead_time: float = attrs.field(default=0.5, validator=positive)
    gravity: float = attrs.field(default=1.0, validator=positive)
    depth_low: float = attrs.field(default=1.5, validator=positive)
    depth_high: float = attrs.field(default=2.5, validator=positive)
    offset: float = attrs.field(default=0.3, validator=non_negative)
    cfl: float = attrs.field(default=0.4, validator=positive)

    @property
    def law(self) -> ShallowWaterLaw:
        return ShallowWaterLaw(gravity=self.gravity)

    @property
    def spacing(self) -> float:
        return 2 * HALF_WIDTH / self.size

    def field(self) -> FieldDescription:
        return FieldDescription.uniform(
            channels=("h", "u", "v"),
            roles=(Role.WATER_HEIGHT, Role.VELOCITY_X, Role.VELOCITY_Y),
            spacing=self.spacing,
        )

    def initial(self, generator: torch.Generator) -> Tensor:
        x, y = cell_centres(self.size, -HALF_WIDTH, HALF_WIDTH)
        n = self.samples
        radius, depth = (
            uniform(generator, n, 0.3, 0.7),
            uniform(generator, n, self.depth_low, self.depth_high),
        )
        cx, cy = (
            uniform(generator, n, -self.offset, self.offset),
            uniform(generator, n, -self.offset, self.offset),
        )
        h = torch.where((x - cx) ** 2 + (y - cy) ** 2 <= radius**2, depth, torch.ones_like(depth))
        return torch.stack([h, torch.zeros_like(h), torch.zeros_like(h)], dim=1)

    def advance(self, state: Tensor, duration: float) -> Tensor:
        h = self.spacing
        return _finite_volume.advance(state, self.law, duration, (h, h), periodic=False, cfl=self.cfl)

    def observe(self, state: Tensor) -> Tensor:
        return torch.stack([state[:, 0], state[:, 1] / state[:, 0], state[:, 2] / state[:, 0]], dim=1)


__all__ = ["HALF_WIDTH", "ShallowWaterGenerator", "ShallowWaterLaw"]
