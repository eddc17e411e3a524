"""The physics checks of the generators, as numbers: the tests bound them,
``benchmarks/data.py`` prints them."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._generator import cell_centres
from .burgers import BurgersGenerator
from .diffusion_reaction import GrayScottGenerator
from .euler import EulerGenerator
from .navier_stokes import NavierStokesGenerator
from .shallow_water import ShallowWaterGenerator
from .wave import WaveGenerator


def _seed(generator: object, seed: int = 0) -> Tensor:
    return generator.initial(torch.Generator().manual_seed(seed))  # type: ignore[attr-defined]


def navier_stokes_taylor_green(viscosity: float = 0.05, duration: float = 2.0) -> float:
    """Relative error of the Taylor–Green energy decay against ``exp(−4νt)`` (ψ = sin x sin y, |k|² = 2)."""
    generator = NavierStokesGenerator(size=16, viscosity=viscosity)
    x, y = (axis - math.pi / 16 for axis in cell_centres(16, 0.0, 2 * math.pi))  # grid points
    vorticity = (2 * torch.sin(x) * torch.sin(y)).view(1, 1, 16, 16)
    start, end = (
        generator.observe(s).pow(2).mean() for s in (vorticity, generator.advance(vorticity, duration))
    )
    return abs(float(end / start) / math.exp(-4 * viscosity * duration) - 1)


def navier_stokes_energy_steps(samples: int = 2, intervals: int = 3, duration: float = 0.5) -> Tensor:
    """Kinetic-energy changes over successive ``duration`` intervals of random flows
    (all < 0 when viscous)."""
    generator = NavierStokesGenerator(samples=samples)
    state, energies = _seed(generator), []
    for _ in range(intervals + 1):
        energies.append(generator.observe(state).pow(2).mean(dim=(1, 2, 3)))
        state = generator.advance(state, duration)
    return torch.stack(energies).diff(dim=0)


def euler_drift(duration: float = 0.5) -> Tensor:
    """Largest change of total mass, x-momentum, y-momentum, energy, over the total of ``|q|``."""
    generator = EulerGenerator(samples=2)
    start = _seed(generator)
    end = generator.advance(start, duration)
    drift = (end.sum(dim=(2, 3)) - start.sum(dim=(2, 3))).abs().max(dim=0).values
    return drift / start.abs().sum(dim=(2, 3)).max(dim=0).values


def shallow_water_mass_drift(duration: float) -> float:
    """Largest relative change of the total water of default dam breaks after ``duration``."""
    generator = ShallowWaterGenerator(samples=4)
    start = _seed(generator)
    mass = start[:, 0].sum(dim=(1, 2)), generator.advance(start, duration)[:, 0].sum(dim=(1, 2))
    return float(((mass[1] - mass[0]) / mass[0]).abs().max())


def shallow_water_front_speed(gravity: float = 2.0, times: tuple[float, float] = (0.2, 0.8)) -> float:
    """Speed of the half-height point of a 2 % planar dam's front on a 64 × 4 strip
    (expect ≈ √(g h), h = 1)."""
    generator = ShallowWaterGenerator(size=64, gravity=gravity)
    x = cell_centres(64, -2.5, 2.5)[0][:, :4]
    state = torch.stack([torch.where(x.abs() <= 0.5, 1.02, 1.0), torch.zeros_like(x), torch.zeros_like(x)])[
        None
    ]
    fronts = []
    for duration in times:
        h = generator.advance(state, duration)[0, 0, :, 0] - 1.0
        i = int(torch.nonzero(h > 0.005).max())
        fronts.append(float(x[i, 0] + (h[i] - 0.005) / (h[i] - h[i + 1]) * (x[i + 1, 0] - x[i, 0])))
    return (fronts[1] - fronts[0]) / (times[1] - times[0])


def wave_energy_drift(duration: float = 0.77) -> float:
    """Largest relative change of the wave energy of random states after ``duration``."""
    generator = WaveGenerator(samples=3, speed=1.5)
    start = _seed(generator)
    energy = generator.energy(start), generator.energy(generator.advance(start, duration))
    return float(((energy[1] - energy[0]) / energy[0]).abs().max())


def wave_translation_error(speed: float = 1.5, duration: float = 0.2) -> float:
    """Max error of ``u₀ = f(x), u_t = −c f'(x)`` against the travelling wave ``f(x − ct)``."""
    generator = WaveGenerator(speed=speed)
    x = cell_centres(32, 0.0, 1.0)[0] - 0.5 / 32

    def shape(s: Tensor) -> Tensor:
        return torch.exp(2 * torch.cos(2 * math.pi * s))

    slope = -4 * math.pi * torch.sin(2 * math.pi * x) * shape(x)
    moved = generator.advance(torch.stack([shape(x), -speed * slope])[None], duration)
    return float((moved[0, 0] - shape(x - speed * duration)).abs().max())


def gray_scott_range(duration: float = 1000.0) -> tuple[float, float, float]:
    """``(min, max, std of v)`` of the concentrations after ``duration`` (bounded in [0, 1], patterned)."""
    generator = GrayScottGenerator(samples=4)
    concentrations = generator.observe(generator.advance(_seed(generator), duration))
    return float(concentrations.min()), float(concentrations.max()), float(concentrations[:, 1].std())


def cole_hopf(size: int, viscosity: float, time: float) -> Tensor:
    """``u = −2ν ∇φ / φ``, ``φ = 2 + a e^{−νt} cos x + b e^{−2νt} cos(x + y)``: an exact Burgers solution."""
    x, y = (axis - math.pi / size for axis in cell_centres(size, 0.0, 2 * math.pi))
    a, b = 0.5 * math.exp(-viscosity * time), 0.3 * math.exp(-2 * viscosity * time)
    phi = 2 + a * torch.cos(x) + b * torch.cos(x + y)
    gradient = (-a * torch.sin(x) - b * torch.sin(x + y), -b * torch.sin(x + y))
    return torch.stack([-2 * viscosity * g / phi for g in gradient])[None]


def burgers_cole_hopf_errors(sizes: tuple[int, ...] = (32, 64), viscosity: float = 0.5) -> list[float]:
    """Relative L2 errors against :func:`cole_hopf` at ``t = 1`` for each grid size."""
    errors = []
    for size in sizes:
        exact = cole_hopf(size, viscosity, 1.0)
        numeric = BurgersGenerator(size=size, viscosity=viscosity).advance(
            cole_hopf(size, viscosity, 0.0), 1.0
        )
        errors.append(float((numeric - exact).norm() / exact.norm()))
    return errors


__all__ = [
    "burgers_cole_hopf_errors",
    "cole_hopf",
    "euler_drift",
    "gray_scott_range",
    "navier_stokes_energy_steps",
    "navier_stokes_taylor_green",
    "shallow_water_front_speed",
    "shallow_water_mass_drift",
    "wave_energy_drift",
    "wave_translation_error",
]
