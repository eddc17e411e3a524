"""The 2-D wave equation ``u_tt = c² ∇²u`` on the periodic unit square, solved exactly in Fourier space.

Each Fourier mode ``k`` is an oscillator of frequency ``ω = c|k|``:
``û(t) = û₀ cos ωt + û₁ sin(ωt)/ω`` and ``û_t(t) = −û₀ ω sin ωt + û₁ cos ωt``, so there is no time
step and no numerical dispersion: energy is conserved and waves move at ``c`` to round-off.
Channels: displacement ``u`` and velocity ``u_t`` (both needed to determine the future).
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
from torch import Tensor

from safesvd_core.plugin import FieldDescription, positive

from ._generator import Generator, random_smooth


@attrs.frozen(kw_only=True)
class WaveGenerator(Generator):
    """Pairs ``(u, u_t)`` from random smooth fields with energy near wavenumber ``peak`` (in 2π units)."""

    name: ClassVar[str] = "wave"

    lead_time: float = attrs.field(default=0.03, validator=positive)
    speed: float = attrs.field(default=1.0, validator=positive)
    peak: float = attrs.field(default=3.0, validator=positive)

    def field(self) -> FieldDescription:
        return FieldDescription.uniform(channels=("u", "u_t"), spacing=1.0 / self.size, periodic=True)

    def initial(self, generator: torch.Generator) -> Tensor:
        u = random_smooth(generator, self.samples, self.size, self.peak)
        velocity = random_smooth(generator, self.samples, self.size, self.peak) * (
            2 * torch.pi * self.peak * self.speed
        )
        return torch.stack([u, velocity], dim=1)

    def advance(self, state: Tensor, duration: float) -> Tensor:
        k = 2 * torch.pi * torch.fft.fftfreq(self.size, d=1.0 / self.size, dtype=torch.float64)
        omega = self.speed * torch.sqrt(k.view(-1, 1) ** 2 + k.view(1, -1) ** 2)
        phase = omega * duration
        # sin(ωt)/ω → t as ω → 0 (the mean mode drifts linearly)
        sinc = torch.where(
            omega > 0, torch.sin(phase) / omega.clamp_min(1e-300), torch.full_like(omega, duration)
        )
        u, velocity = torch.fft.fft2(state[:, 0]), torch.fft.fft2(state[:, 1])
        u_next = u * torch.cos(phase) + velocity * sinc
        velocity_next = -u * omega * torch.sin(phase) + velocity * torch.cos(phase)
        return torch.stack([torch.fft.ifft2(u_next).real, torch.fft.ifft2(velocity_next).real], dim=1)

    def energy(self, state: Tensor) -> Tensor:
        """``½∫(u_t² + c²|∇u|²)`` per sample, with the spectral gradient."""
        k = 2 * torch.pi * torch.fft.fftfreq(self.size, d=1.0 / self.size, dtype=torch.float64)
        u = torch.fft.fft2(state[:, 0])
        gradient = [
            torch.fft.ifft2(1j * k.view(-1, 1) * u).real,
            torch.fft.ifft2(1j * k.view(1, -1) * u).real,
        ]
        density = state[:, 1] ** 2 + self.speed**2 * (gradient[0] ** 2 + gradient[1] ** 2)
        return 0.5 * density.sum(dim=(1, 2)) / self.size**2


__all__ = ["WaveGenerator"]
