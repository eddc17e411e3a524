"""What every data generator shares: sizes, seed, spin-up, lead time and the pair-making recipe."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import attrs
import torch
from torch import Tensor

from safesvd_core.plugin import ConfigError, FieldDescription, positive, positive_int

from .pairs import PairSet
from .rollouts import RolloutSet


def non_negative(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """A real number ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"{attribute.name} must be a number ≥ 0, got {value!r}")


def seed_value(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """An integer ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{attribute.name} must be an integer ≥ 0, got {value!r}")


def grid_size(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """An integer ≥ 8 (the smallest grid the stencils and initial conditions make sense on)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 8:
        raise ConfigError(f"{attribute.name} must be an integer ≥ 8, got {value!r}")


@attrs.frozen(kw_only=True)
class Generator(abc.ABC):
    """A seeded, batched solver: ``samples`` random initial states on a ``size``² grid are run for
    ``spin_up``; that state is the input and the state ``lead_time`` later the target.

    Subclasses give ``name``, ``spin_up`` and ``lead_time`` defaults, and the solver hooks.
    Solvers work in float64; pairs are float32.
    """

    name: ClassVar[str]

    samples: int = attrs.field(default=16, validator=positive_int)
    size: int = attrs.field(default=32, validator=grid_size)
    seed: int = attrs.field(default=0, validator=seed_value)
    spin_up: float = attrs.field(default=0.0, validator=non_negative)
    lead_time: float = attrs.field(default=1.0, validator=positive)

    @abc.abstractmethod
    def field(self) -> FieldDescription:
        """The description of the observed channels."""

    @abc.abstractmethod
    def initial(self, generator: torch.Generator) -> Tensor:
        """Random initial states ``(samples, state channels, size, size)`` in float64."""

    @abc.abstractmethod
    def advance(self, state: Tensor, duration: float) -> Tensor:
        """The states ``duration`` later."""

    def observe(self, state: Tensor) -> Tensor:
        """The observed channels of ``state`` (the state itself unless overridden)."""
        return state

    def generate(self) -> PairSet:
        """``(input, target)`` pairs with this generator's field description and name as domain."""
        with one_thread():
            state = self.initial(torch.Generator().manual_seed(self.seed))
            if self.spin_up > 0:
                state = self.advance(state, self.spin_up)
            later = self.advance(state, self.lead_time)
        return PairSet(
            field=self.field(),
            inputs=self.observe(state).float(),
            targets=self.observe(later).float(),
            domain=self.name,
            lead_time=float(self.lead_time),
        )

    def rollouts(self, steps: int) -> RolloutSet:
        """Start states (after ``spin_up``) and the ``steps`` states ``lead_time`` apart that follow,
        for rollout calibration; the first of them is :meth:`generate`'s target."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"steps: expected an integer ≥ 1, got {steps!r}")
        with one_thread():
            state = self.initial(torch.Generator().manual_seed(self.seed))
            if self.spin_up > 0:
                state = self.advance(state, self.spin_up)
            start, frames = state, []
            for _ in range(steps):
                state = self.advance(state, self.lead_time)
                frames.append(self.observe(state).float())
        return RolloutSet(
            field=self.field(),
            inputs=self.observe(start).float(),
            trajectories=torch.stack(frames, dim=1),
            domain=self.name,
            lead_time=float(self.lead_time),
        )


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch with one intra-op thread, then restore the setting.

    The generators' tensors are small (a few 32² or 64² grids): a second thread gains little on
    an idle machine and, on a loaded one, spinning OpenMP threads slowed a solve by 50× here.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def uniform(generator: torch.Generator, samples: int, low: float, high: float) -> Tensor:
    """``samples`` float64 draws from U(low, high), shaped ``(samples, 1, 1)`` to broadcast over a grid."""
    return (low + (high - low) * torch.rand(samples, generator=generator, dtype=torch.float64)).view(-1, 1, 1)


def cell_centres(size: int, low: float, high: float) -> tuple[Tensor, Tensor]:
    """``(x, y)`` cell-centre coordinates ``(size, size)`` of ``[low, high)²``, ``x`` along dimension 0."""
    axis = low + (torch.arange(size, dtype=torch.float64) + 0.5) * (high - low) / size
    return torch.meshgrid(axis, axis, indexing="ij")


def random_smooth(generator: torch.Generator, samples: int, size: int, peak: float) -> Tensor:
    """Periodic random fields ``(samples, size, size)``, energy near wavenumber ``peak``, zero mean,
    unit RMS."""
    k = torch.fft.fftfreq(size, d=1.0 / size, dtype=torch.float64)
    kx, ky = torch.meshgrid(k, k, indexing="ij")
    magnitude = torch.sqrt(kx**2 + ky**2)
    envelope = magnitude * torch.exp(-((magnitude / peak) ** 2))
    noise = torch.randn(samples, size, size, generator=generator, dtype=torch.float64)
    field = torch.fft.ifft2(torch.fft.fft2(noise) * envelope).real
    return field / field.pow(2).mean(dim=(1, 2), keepdim=True).sqrt()


__all__ = [
    "Generator",
    "cell_centres",
    "grid_size",
    "non_negative",
    "one_thread",
    "random_smooth",
    "seed_value",
    "uniform",
]
