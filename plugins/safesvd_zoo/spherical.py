"""The zoo's spherical Fourier neural operator: torch-harmonics' ``SFNO`` on the shallow-water
equations on the rotating sphere.

Embedding width 32, 4 blocks, 32 × 64 equiangular grid, spherical harmonics up to degree 32
(most of its parameters are complex spectral weights), mapping the state (geopotential,
vorticity, divergence) to the state ``LEAD_HOURS`` later. The data come from torch-harmonics' own
solver (``torch_harmonics.examples.ShallowWaterSolver``): each trajectory starts from its random
initial condition (Mach 0.2) advanced by ``SPIN_UP_HOURS``, and its frames are ``LEAD_HOURS``
apart. Channels are normalised by
the training inputs' mean and standard deviation. ``benchmarks/train_sfno.py`` trains it (minutes
on one CPU thread) and writes ``weights/sfno-swe.{safetensors,json}``. Needs torch-harmonics.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor, nn

from safesvd_core.plugin import ConfigError

from .shipped import load_weights, read_card

NAME = "sfno-swe"
GRID = (32, 64)
LEAD_HOURS = 1
#: Solver steps per hour (the solver's own time step is 600 s).
STEPS_PER_HOUR = 6
#: Hours each random initial condition is advanced before its first frame: the unbalanced start
#: sheds its fast gravity waves first, so that frames are states the flow reaches by itself.
SPIN_UP_HOURS = 12
CHANNELS = ("geopotential", "vorticity", "divergence")
CONFIG = {"embed_dim": 32, "num_layers": 4, "scale_factor": 1}
#: Split → (trajectories, seed).
SPLITS = {"train": (256, 30), "calibration": (32, 31), "test": (32, 32)}
TRAIN_STEPS, ROLLOUT_STEPS = 8, 8

__all__ = ["CHANNELS", "GRID", "NAME", "build", "card", "load", "pairs", "trajectories"]


def _harmonics(module: str):
    from safesvd_adapters.framework import require

    return require(module, adapter="torch-harmonics", extra="torch-harmonics")


def build() -> nn.Module:
    """A randomly initialised SFNO of :data:`CONFIG` (seed torch first for a reproducible one)."""
    models = _harmonics("torch_harmonics.examples.models")
    return models.SphericalFourierNeuralOperator(
        img_size=GRID, grid="equiangular", in_chans=3, out_chans=3, **CONFIG
    )


@functools.cache
def _solver() -> nn.Module:
    examples = _harmonics("torch_harmonics.examples")
    lmax = math.ceil(GRID[0] / 3)
    return examples.ShallowWaterSolver(
        *GRID, 3600.0 / STEPS_PER_HOUR, lmax=lmax, mmax=lmax, grid="equiangular"
    ).to(torch.float64)


def _raw_trajectories(samples: int, steps: int, seed: int) -> Tensor:
    """``(samples, steps + 1, 3, *GRID)`` states ``LEAD_HOURS`` apart, in physical units."""
    solver = _solver()
    torch.manual_seed(seed)
    states = []
    with torch.no_grad():
        for _ in range(samples):
            spectrum = solver.random_initial_condition(mach=0.2)
            spectrum = solver.timestep(spectrum, SPIN_UP_HOURS * STEPS_PER_HOUR)
            frames = [solver.spec2grid(spectrum)]
            for _ in range(steps):
                spectrum = solver.timestep(spectrum, LEAD_HOURS * STEPS_PER_HOUR)
                frames.append(solver.spec2grid(spectrum))
            states.append(torch.stack(frames))
    return torch.stack(states).float()


@functools.cache
def _normalisation() -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation of the training trajectories' first frames."""
    samples, seed = SPLITS["train"]
    start = _raw_trajectories(samples, 0, seed)[:, 0]
    return start.mean(dim=(0, 2, 3)).view(1, 3, 1, 1), start.std(dim=(0, 2, 3)).view(1, 3, 1, 1)


@functools.cache
def _split(split: str, steps: int) -> Tensor:
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    samples, seed = SPLITS[split]
    mean, std = _normalisation()
    return (_raw_trajectories(samples, steps, seed) - mean.unsqueeze(1)) / std.unsqueeze(1)


def trajectories(split: str, steps: int = ROLLOUT_STEPS) -> tuple[Tensor, Tensor]:
    """``(start, frames)`` of ``split``, normalised: ``start`` ``(N, 3, 32, 64)`` and ``frames[:, s]``
    the state ``(s + 1) · LEAD_HOURS`` hours later, ``(N, steps, 3, 32, 64)``."""
    states = _split(split, steps)
    return states[:, 0].clone(), states[:, 1:].clone()


def pairs(split: str, steps: int = ROLLOUT_STEPS) -> tuple[Tensor, Tensor]:
    """One-step ``(inputs, targets)``: every consecutive pair of frames of ``split``'s trajectories."""
    states = _split(split, steps)
    return states[:, :-1].flatten(0, 1).clone(), states[:, 1:].flatten(0, 1).clone()


def card() -> dict[str, Any]:
    """The JSON card of the shipped weights (configuration, data, training, test errors)."""
    return read_card(NAME, "benchmarks/train_sfno.py")


def load() -> nn.Module:
    """The trained model, in eval mode."""
    card()
    return load_weights(build(), NAME)
