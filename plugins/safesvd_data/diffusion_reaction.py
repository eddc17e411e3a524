"""Gray–Scott diffusion–reaction on the periodic unit square.

``u_t = D_u ∇²u − u v² + F (1 − u)``, ``v_t = D_v ∇²v + u v² − (F + k) v``: second-order central
differences and SSP-RK3 with a step below the diffusive and reactive limits. The concentrations
stay in ``[0, 1]``. Each sample starts from ``u = 1, v = 0`` with a few random square patches of
``u = 1/2, v = 1/4`` plus 1 % noise; ``F`` and ``k`` are drawn per sample around the pattern-forming
regime (Pearson 1993).
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
from torch import Tensor

from safesvd_core.plugin import FieldDescription, Role, positive, positive_int

from ._generator import Generator, non_negative, uniform
from ._stencils import laplacian
from ._time import integrate


@attrs.frozen(kw_only=True)
class GrayScottGenerator(Generator):
    """Pairs of concentrations ``(u, v)``; ``patches`` seeds per sample."""

    name: ClassVar[str] = "diffusion_reaction"

    spin_up: float = attrs.field(default=200.0, validator=non_negative)
    lead_time: float = attrs.field(default=200.0, validator=positive)
    diffusion_u: float = attrs.field(default=3.2e-4, validator=positive)
    diffusion_v: float = attrs.field(default=1.6e-4, validator=positive)
    patches: int = attrs.field(default=3, validator=positive_int)
    dt: float = attrs.field(default=1.0, validator=positive)

    @property
    def spacing(self) -> float:
        return 1.0 / self.size

    def field(self) -> FieldDescription:
        return FieldDescription.uniform(
            channels=("u", "v"), roles=(Role.CONCENTRATION,) * 2, spacing=self.spacing, periodic=True
        )

    def initial(self, generator: torch.Generator) -> Tensor:
        n, size = self.samples, self.size
        u = torch.ones(n, size, size, dtype=torch.float64)
        v = torch.zeros(n, size, size, dtype=torch.float64)
        half = max(1, size // 16)
        corners = torch.randint(0, size, (n, self.patches, 2), generator=generator)
        offsets = torch.arange(-half, half + 1)
        for sample, patches in enumerate(corners):
            for i, j in patches:
                rows, cols = ((i + offsets) % size).view(-1, 1), ((j + offsets) % size).view(1, -1)
                u[sample, rows, cols], v[sample, rows, cols] = 0.5, 0.25
        noise = 0.01 * torch.rand(2, n, size, size, generator=generator, dtype=torch.float64)
        feed, kill = uniform(generator, n, 0.030, 0.046), uniform(generator, n, 0.059, 0.063)
        state = torch.stack([(u - noise[0]).clamp(0, 1), (v + noise[1]).clamp(0, 1)], dim=1)
        parameters = torch.cat([feed, kill], dim=1).unsqueeze(-1).expand(n, 2, size, size)
        return torch.cat([state, parameters], dim=1)

    def advance(self, state: Tensor, duration: float) -> Tensor:
        h = self.spacing
        diffusion = torch.tensor([self.diffusion_u, self.diffusion_v], dtype=torch.float64).view(1, 2, 1, 1)
        limit = min(self.dt, 0.2 * h * h / max(self.diffusion_u, self.diffusion_v))

        def rhs(s: Tensor) -> Tensor:
            u, v, feed, kill = s.unbind(1)
            reaction = u * v * v
            change = torch.stack([-reaction + feed * (1 - u), reaction - (feed + kill) * v], dim=1)
            return torch.cat([diffusion * laplacian(s[:, :2], h) + change, torch.zeros_like(s[:, 2:])], dim=1)

        return integrate(rhs, state, duration, lambda s: limit)

    def observe(self, state: Tensor) -> Tensor:
        return state[:, :2]


__all__ = ["GrayScottGenerator"]
