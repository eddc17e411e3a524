"""The bundled reference PFM: a :class:`FieldTransformer` trained on 2-D incompressible NS.

Its weights (safetensors) and a JSON card (configuration, seeds, test losses) ship in
``weights/``; ``benchmarks/train_reference.py`` regenerates both. Data splits are generated
on the fly from fixed seeds (a few seconds), so nothing is ever downloaded.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from safesvd_core import FieldDescription
from safesvd_core.plugin import ConfigError

from .navier_stokes import NavierStokes2D, velocity_pairs
from .operator import FieldTransformer, OperatorConfig
from .shipped import load_weights, read_card

NAME = "ns2d-transformer"
SPLITS = {"train": (512, 0), "calibration": (32, 1), "test": (64, 2)}
LEAD_TIME = 1.0
GRID = 32
#: Seeds of the rollout sets: the test trajectories, and three calibration sets (long-horizon
#: results vary with the calibration set, so the benchmark averages over the three).
TEST_TRAJECTORY_SEED = 3
CALIBRATION_TRAJECTORY_SEEDS = (11, 12, 13)


#: The reference data: velocity (u, v) on a periodic 32² grid over [0, 2π)², axis 2 = x.
FIELD = FieldDescription(
    channels=("u", "v"),
    roles=("velocity_x", "velocity_y"),
    spacing=(NavierStokes2D(size=GRID).spacing,) * 2,
    periodic=(True, True),
)


def trajectories(
    samples: int = 8, steps: int = 5, *, seed: int = TEST_TRAJECTORY_SEED
) -> tuple[Tensor, Tensor]:
    """``(input, trajectory)``: ``trajectory[:, s]`` is the flow ``(s + 1)`` lead times after the input."""
    return velocity_frames(samples, steps, seed=seed, lead_time=LEAD_TIME)


def velocity_frames(samples: int, steps: int, *, seed: int, lead_time: float) -> tuple[Tensor, Tensor]:
    """``(start, frames)``: random vorticities advanced one time unit, their velocity, and the
    velocity ``(s + 1) · lead_time`` later at ``frames[:, s]``, on the reference grid."""
    solver = NavierStokes2D(size=GRID)
    generator = torch.Generator().manual_seed(seed)
    state = solver.advance(solver.random_vorticity(samples, generator), 1.0)
    start = solver.velocity(state).float()
    frames = []
    for _ in range(steps):
        state = solver.advance(state, lead_time)
        frames.append(solver.velocity(state).float())
    return start, torch.stack(frames, dim=1)


def trajectory_batches(
    samples: int = 32, steps: int = 5, *, seed: int = CALIBRATION_TRAJECTORY_SEEDS[0], batch_size: int = 16
) -> list[tuple[Tensor, Tensor]]:
    """Rollout items ``(input, trajectory)``, the trajectory ``(batch, steps, 2, 32, 32)``: for
    rollout calibration (``compress``) and rollout evaluation (``evaluate(..., rollout=)``)."""
    start, trajectory = trajectories(samples=samples, steps=steps, seed=seed)
    return [
        (start[i : i + batch_size], trajectory[i : i + batch_size]) for i in range(0, samples, batch_size)
    ]


def test_items(steps: int | None = None, batch_size: int = 32) -> list[tuple[Tensor, Tensor]]:
    """The test data: the ``"test"`` split's one-step batches, or with ``steps`` the 32 test
    trajectories of that many steps (a ``[test] function`` of a ``safesvd compress`` config)."""
    if steps is None:
        return batches("test", batch_size=batch_size)
    return trajectory_batches(32, steps, seed=TEST_TRAJECTORY_SEED, batch_size=batch_size)


def split(name: str) -> tuple[Tensor, Tensor]:
    """``(inputs, targets)`` of a data split: ``"train"``, ``"calibration"`` or ``"test"``."""
    if name not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
    samples, seed = SPLITS[name]
    return velocity_pairs(samples, size=GRID, lead_time=LEAD_TIME, seed=seed)


def batches(name: str, batch_size: int = 16) -> list[tuple[Tensor, Tensor]]:
    """A split cut into ``(input, target)`` batches."""
    inputs, targets = split(name)
    return [
        (inputs[i : i + batch_size], targets[i : i + batch_size]) for i in range(0, len(inputs), batch_size)
    ]


def card() -> dict[str, Any]:
    """The JSON card of the shipped weights (configuration, seeds, recorded losses)."""
    return read_card(NAME, "benchmarks/train_reference.py")


def load() -> FieldTransformer:
    """The trained reference model, in eval mode."""
    return load_weights(FieldTransformer(OperatorConfig(**card()["config"])), NAME)


def block_names(model: FieldTransformer) -> list[str]:
    """Names of the model's transformer blocks (a sequential chain)."""
    return model.block_names()


def test_loss(model: torch.nn.Module) -> float:
    """Mean squared error on the test split."""
    inputs, targets = split("test")
    with torch.no_grad():
        return float(torch.mean((model(inputs) - targets) ** 2))
