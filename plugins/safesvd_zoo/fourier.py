"""The zoo's Fourier neural operator: a neuraloperator ``FNO`` trained on 2-D incompressible NS.

Width 32, 12 × 12 Fourier modes, 4 layers (96 % of its parameters are complex Fourier weights),
mapping the velocity ``(u, v)`` on the periodic 32² grid to the velocity ``LEAD_TIME`` later.
Trajectories come from the same solver as the reference model's (:mod:`safesvd_data.navier_stokes`):
each starts from a random vorticity advanced by one time unit, and its frames are ``LEAD_TIME``
apart. The one-step pairs are consecutive frames of such trajectories. ``benchmarks/train_fno.py``
trains it (about a minute on one CPU thread) and writes ``weights/fno-ns.{safetensors,json}``.
Needs the ``neuraloperator`` extra.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from safesvd_core.plugin import ConfigError

from .reference import FIELD, GRID, velocity_frames
from .shipped import load_weights, read_card

NAME = "fno-ns"
LEAD_TIME = 0.25
CONFIG = {"modes": 12, "width": 32, "layers": 4}
#: Split → (trajectories, seed). A trajectory of ``steps`` frames gives ``steps`` one-step pairs.
SPLITS = {"train": (128, 20), "calibration": (32, 21), "test": (32, 22)}
#: Frames per trajectory: of the training split, and of the rollout splits (horizons up to 8).
TRAIN_STEPS, ROLLOUT_STEPS = 8, 8

__all__ = ["FIELD", "GRID", "NAME", "build", "card", "load", "pairs", "trajectories"]


def build() -> nn.Module:
    """A randomly initialised FNO of :data:`CONFIG` (seed torch first for a reproducible one)."""
    from safesvd_adapters.framework import require

    models = require("neuralop.models", adapter="neuraloperator", extra="neuraloperator")
    return models.FNO(
        n_modes=(CONFIG["modes"], CONFIG["modes"]),
        in_channels=2,
        out_channels=2,
        hidden_channels=CONFIG["width"],
        n_layers=CONFIG["layers"],
    )


def trajectories(split: str, steps: int = ROLLOUT_STEPS) -> tuple[Tensor, Tensor]:
    """``(start, frames)`` of ``split``: ``start`` ``(N, 2, 32, 32)`` and ``frames[:, s]`` the flow
    ``(s + 1) · LEAD_TIME`` later, ``(N, steps, 2, 32, 32)``."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    samples, seed = SPLITS[split]
    return velocity_frames(samples, steps, seed=seed, lead_time=LEAD_TIME)


def pairs(split: str, steps: int = ROLLOUT_STEPS) -> tuple[Tensor, Tensor]:
    """One-step ``(inputs, targets)`` of ``split``: every consecutive pair of frames of its trajectories."""
    start, frames = trajectories(split, steps)
    sequence = torch.cat([start[:, None], frames], dim=1)
    return sequence[:, :-1].flatten(0, 1), sequence[:, 1:].flatten(0, 1)


def card() -> dict[str, Any]:
    """The JSON card of the shipped weights (configuration, data, training, test errors)."""
    return read_card(NAME, "benchmarks/train_fno.py")


def load() -> nn.Module:
    """The trained model, in eval mode."""
    card()
    return load_weights(build(), NAME)
