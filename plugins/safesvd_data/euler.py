"""Compressible Euler in 2-D: Kelvin–Helmholtz shear layers on the periodic unit square.

``ρ_t + ∇·(ρu) = 0``, ``(ρu)_t + ∇·(ρu⊗u + p I) = 0``, ``E_t + ∇·((E + p)u) = 0``,
``p = (γ − 1)(E − ρ|u|²/2)``; finite volumes (:mod:`._finite_volume`). Each sample draws the
density of the middle strip, the shear speed, and the amplitude, wavenumber and phase of the
transverse velocity seed. Observed channels follow PDEBench's ``2D_CFD``: ``density, pressure,
Vx, Vy``.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
from torch import Tensor

from safesvd_core.plugin import FieldDescription, Role, positive

from . import _finite_volume
from ._generator import Generator, cell_centres, uniform


@attrs.frozen(kw_only=True)
class EulerLaw:
    """The Euler flux and wave speed ``|u_n| + √(γp/ρ)`` for ``q = (ρ, ρu, ρv, E)``."""

    gamma: float = attrs.field(default=1.4, validator=positive)

    def pressure(self, q: Tensor) -> Tensor:
        return (self.gamma - 1) * (q[:, 3] - 0.5 * (q[:, 1] ** 2 + q[:, 2] ** 2) / q[:, 0])

    def flux(self, q: Tensor, axis: int) -> Tensor:
        normal = q[:, 1 + axis] / q[:, 0]
        p = self.pressure(q)
        flux = q * normal.unsqueeze(1)
        flux[:, 1 + axis] += p
        flux[:, 3] += p * normal
        return flux

    def speed(self, q: Tensor, axis: int) -> Tensor:
        return (q[:, 1 + axis] / q[:, 0]).abs() + torch.sqrt(self.gamma * self.pressure(q) / q[:, 0])


@attrs.frozen(kw_only=True)
class EulerGenerator(Generator):
    """Kelvin–Helmholtz pairs ``(ρ, p, u, v)``; ``pressure`` is the uniform initial pressure."""

    name: ClassVar[str] = "euler"

    spin_up: float = attrs.field(default=0.5, validator=positive)
    lead_time: float = attrs.field(default=1.0, validator=positive)
    gamma: float = attrs.field(default=1.4, validator=positive)
    pressure: float = attrs.field(default=2.5, validator=positive)
    cfl: float = attrs.field(default=0.4, validator=positive)

    @property
    def law(self) -> EulerLaw:
        return EulerLaw(gamma=self.gamma)

    def field(self) -> FieldDescription:
        return FieldDescription.uniform(
            channels=("density", "pressure", "Vx", "Vy"),
            roles=(Role.DENSITY, Role.PRESSURE, Role.VELOCITY_X, Role.VELOCITY_Y),
            spacing=1.0 / self.size,
            periodic=True,
        )

    def initial(self, generator: torch.Generator) -> Tensor:
        x, y = cell_centres(self.size, 0.0, 1.0)
        n = self.samples
        contrast, shear = uniform(generator, n, 0.5, 1.5), uniform(generator, n, 0.3, 0.6)
        amplitude, phase = uniform(generator, n, 0.02, 0.06), uniform(generator, n, 0.0, 1.0)
        mode = torch.randint(1, 3, (n, 1, 1), generator=generator).double()
        width = 1.5 / self.size + 0.02
        strip = 0.5 * (torch.tanh((y - 0.25) / width) - torch.tanh((y - 0.75) / width))
        rho = 1.0 + contrast * strip
        u = shear * (2 * strip - 1)
        bumps = torch.exp(-((y - 0.25) ** 2) / 0.005) + torch.exp(-((y - 0.75) ** 2) / 0.005)
        v = amplitude * torch.sin(2 * torch.pi * mode * (x + phase)) * bumps
        energy = self.pressure / (self.gamma - 1) + 0.5 * rho * (u**2 + v**2)
        return torch.stack([rho, rho * u, rho * v, energy.expand_as(rho)], dim=1)

    def advance(self, state: Tensor, duration: float) -> Tensor:
        h = 1.0 / self.size
        return _finite_volume.advance(state, self.law, duration, (h, h), periodic=True, cfl=self.cfl)

    def observe(self, state: Tensor) -> Tensor:
        rho = state[:, 0]
        return torch.stack([rho, self.law.pressure(state), state[:, 1] / rho, state[:, 2] / rho], dim=1)


__all__ = ["EulerGenerator", "EulerLaw"]
