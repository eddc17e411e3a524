"""2-D incompressible Navier–Stokes on the periodic square ``[0, 2π)²``, pseudo-spectral.

Vorticity form ``ω_t + u·∇ω = ν ∇²ω`` with the 2/3 dealiasing rule; Crank–Nicolson for the
viscous term and Adams–Bashforth 2 for advection (the first step by forward Euler). The time step
is fixed (``dt``, 0.02: stable up to 64² at the default flows); a solve that stops being finite (or grows
past the maximum principle) raises :class:`NumericalError` naming a stable one. Velocity
comes from the stream function, ``ψ̂ = ω̂ / |k|²``, ``u = ∂ψ/∂y``, ``v = −∂ψ/∂x``. Tensors are
``(batch, x, y)``: axis 1 is x, axis 2 is y. Everything is batched torch in float64.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch
from torch import Tensor

from safesvd_core.plugin import FieldDescription, NumericalError, Role, positive, positive_int

from ._generator import Generator, non_negative, random_smooth

#: How far the largest |vorticity| may grow in a solve before it counts as unstable: the equations let it
#: only decay (2-D maximum principle), the scheme's rounding and dealiasing overshoot a little.
_GROWTH = 10.0


@attrs.frozen(kw_only=True)
class NavierStokes2D:
    """Solver settings: grid size, viscosity and time step."""

    size: int = attrs.field(default=32, validator=positive_int)
    viscosity: float = attrs.field(default=1e-3, validator=positive)
    dt: float = attrs.field(default=0.02, validator=positive)

    @property
    def spacing(self) -> float:
        return 2 * math.pi / self.size

    def _wavenumbers(self) -> tuple[Tensor, Tensor]:
        k = torch.fft.fftfreq(self.size, d=1.0 / self.size, dtype=torch.float64)
        kx, ky = torch.meshgrid(k, k, indexing="ij")
        return kx, ky

    def random_vorticity(self, samples: int, generator: torch.Generator, *, peak: float = 3.0) -> Tensor:
        """Random smooth initial vorticity with energy near wavenumber ``peak``, unit RMS."""
        return random_smooth(generator, samples, self.size, peak)

    def velocity(self, vorticity: Tensor) -> Tensor:
        """``(batch, 2, x, y)`` velocity ``(u, v)`` of ``vorticity`` ``(batch, x, y)``."""
        kx, ky = self._wavenumbers()
        k2 = kx**2 + ky**2
        k2[0, 0] = 1.0
        psi = torch.fft.fft2(vorticity) / k2
        psi[..., 0, 0] = 0.0
        u = torch.fft.ifft2(1j * ky * psi).real
        v = torch.fft.ifft2(-1j * kx * psi).real
        return torch.stack([u, v], dim=1)

    def advance(self, vorticity: Tensor, duration: float) -> Tensor:
        """Integrate ``vorticity`` ``(batch, x, y)`` forward by ``duration``."""
        steps = max(1, round(duration / self.dt))
        kx, ky = self._wavenumbers()
        k2 = kx**2 + ky**2
        k2_safe = k2.clone()
        k2_safe[0, 0] = 1.0
        cutoff = self.size // 3
        dealias = ((kx.abs() <= cutoff) & (ky.abs() <= cutoff)).to(torch.float64)
        half_viscous = 0.5 * self.dt * self.viscosity * k2
        implicit = 1.0 / (1.0 + half_viscous)
        explicit = 1.0 - half_viscous

        def advection(w_hat: Tensor) -> Tensor:
            psi = w_hat / k2_safe
            u = torch.fft.ifft2(1j * ky * psi).real
            v = torch.fft.ifft2(-1j * kx * psi).real
            wx = torch.fft.ifft2(1j * kx * w_hat).real
            wy = torch.fft.ifft2(1j * ky * w_hat).real
            return torch.fft.fft2(u * wx + v * wy) * dealias

        w_hat = torch.fft.fft2(vorticity)
        previous = advection(w_hat)
        w_hat = (explicit * w_hat - self.dt * previous) * implicit
        for _ in range(steps - 1):
            current = advection(w_hat)
            w_hat = (explicit * w_hat - self.dt * (1.5 * current - 0.5 * previous)) * implicit
            previous = current
        result = torch.fft.ifft2(w_hat).real
        # 2-D vorticity obeys a maximum principle: growth past it is the scheme's instability
        if not float(result.abs().max()) <= _GROWTH * float(vorticity.abs().max()):
            raise NumericalError(
                f"Navier-Stokes on a {self.size}² grid with dt = {self.dt}: the solution became unstable "
                f"(non-finite or growing) within t = {duration}, the time step too large for this grid; "
                f"pass dt ≤ {self.stable_dt(vorticity):.2g}"
            )
        return result

    def stable_dt(self, vorticity: Tensor) -> float:
        """Half the advective limit ``1 / (max|u| · k_max)`` of ``vorticity``'s flow (``k_max`` the
        largest wavenumber kept by dealiasing): a time step the solve stays finite with."""
        speed = float(self.velocity(vorticity).abs().max())
        return 0.5 / (max(speed, 1e-12) * max(self.size // 3, 1))


def velocity_pairs(
    samples: int, *, size: int = 32, lead_time: float = 1.0, viscosity: float = 1e-3, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """``(input, target)`` velocity fields ``(samples, 2, size, size)`` in float32, ``lead_time`` apart.

    The input is the flow after a spin-up of one time unit from a random smooth vorticity.
    """
    solver = NavierStokes2D(size=size, viscosity=viscosity)
    generator = torch.Generator().manual_seed(seed)
    start = solver.advance(solver.random_vorticity(samples, generator), 1.0)
    end = solver.advance(start, lead_time)
    return solver.velocity(start).float(), solver.velocity(end).float()


@attrs.frozen(kw_only=True)
class NavierStokesGenerator(Generator):
    """Velocity pairs ``(u, v)`` of decaying 2-D turbulence from :class:`NavierStokes2D`.

    The state is the vorticity ``(samples, 1, x, y)``; the defaults match :func:`velocity_pairs`.
    """

    name: ClassVar[str] = "navier_stokes"

    spin_up: float = attrs.field(default=1.0, validator=non_negative)
    lead_time: float = attrs.field(default=1.0, validator=positive)
    viscosity: float = attrs.field(default=1e-3, validator=positive)
    dt: float = attrs.field(default=0.02, validator=positive)
    peak: float = attrs.field(default=3.0, validator=positive)

    @property
    def solver(self) -> NavierStokes2D:
        return NavierStokes2D(size=self.size, viscosity=self.viscosity, dt=self.dt)

    def field(self) -> FieldDescription:
        return FieldDescription.uniform(
            channels=("u", "v"),
            roles=(Role.VELOCITY_X, Role.VELOCITY_Y),
            spacing=self.solver.spacing,
            periodic=True,
        )

    def initial(self, generator: torch.Generator) -> Tensor:
        return self.solver.random_vorticity(self.samples, generator, peak=self.peak).unsqueeze(1)

    def advance(self, state: Tensor, duration: float) -> Tensor:
        return self.solver.advance(state.squeeze(1), duration).unsqueeze(1)

    def observe(self, state: Tensor) -> Tensor:
        return self.solver.velocity(state.squeeze(1))
