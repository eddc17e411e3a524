"""What every file reader shares: its options, and cutting trajectories into ``(input, target)`` pairs."""

from __future__ import annotations

import abc
import math
import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from safesvd_core.plugin import ConfigError, FieldDescription, positive_int

from .pairs import PairSet
from .rollouts import RolloutSet


def _optional_positive_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None:
        positive_int(instance, attribute, value)


def _optional_label(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{attribute.name} must be a non-empty string or None, got {value!r}")


@attrs.frozen(kw_only=True, eq=False)
class Trajectories:
    """Loaded trajectories ``(n, steps, channels, *grid)`` with their description, label and time step."""

    data: np.ndarray
    field: FieldDescription
    domain: str
    dt: float = float("nan")

    def __attrs_post_init__(self) -> None:
        """Real numbers only: a cast to float32 would drop an imaginary part without a word."""
        if self.data.dtype.kind not in "fiub":
            what = "complex" if self.data.dtype.kind == "c" else "not numbers"
            raise ConfigError(
                f"{self.domain!r}: the file's fields are {what} ({self.data.dtype}); safesvd reads real "
                "fields: write the real and imaginary parts (or the magnitude) as channels of their own"
            )


@attrs.frozen(kw_only=True)
class Reader(abc.ABC):
    """Options of every reader.

    ``lead_steps``: saved time steps between input and target. ``stride``: steps between
    successive inputs of one trajectory (default ``lead_steps``). ``trajectories``: read only the
    first ``n`` trajectories (all by default). ``domain``: the label of every sample (default:
    the file's dataset name where it records one, else its stem).
    """

    path: Path = attrs.field(converter=Path)
    lead_steps: int = attrs.field(default=1, validator=positive_int)
    stride: int | None = attrs.field(default=None, validator=_optional_positive_int)
    trajectories: int | None = attrs.field(default=None, validator=_optional_positive_int)
    domain: str | None = attrs.field(default=None, validator=_optional_label)

    @abc.abstractmethod
    def load(self) -> Trajectories:
        """The trajectories of the file (the first ``trajectories`` of them)."""

    def read(self) -> PairSet:
        """The file as ``(input, target)`` pairs with its field description and domain label."""
        return to_pairs(self.load(), lead_steps=self.lead_steps, stride=self.stride or self.lead_steps)

    def read_rollouts(self, steps: int) -> RolloutSet:
        """The file as rollout items: each start ``t`` with the ``steps`` states ``lead_steps`` apart after
        it."""
        return to_rollouts(
            self.load(), steps=steps, lead_steps=self.lead_steps, stride=self.stride or self.lead_steps
        )

    def _label(self, recorded: str | None = None) -> str:
        return self.domain or recorded or self.path.stem

    def _open(self):
        """The file, opened read-only with h5py (the ``data`` extra)."""
        try:
            import h5py
        except ImportError:
            raise ConfigError("reading HDF5 files needs h5py: pip install 'safesvd[data]'") from None
        if not os.path.isfile(self.path):
            raise ConfigError(f"path: no such file {str(self.path)!r}")
        try:
            return h5py.File(self.path, "r")
        except OSError as error:  # not HDF5 (a text file, a truncated download): name the file
            raise ConfigError(
                f"{self.path} is not a readable HDF5 file ({error}); give a PDEBench or The Well HDF5 file"
            ) from None


def to_pairs(trajectories: Trajectories, *, lead_steps: int, stride: int) -> PairSet:
    """Pairs ``(u[t], u[t + lead_steps])`` for ``t = 0, stride, 2·stride, …`` of every trajectory."""
    data = trajectories.data
    steps = data.shape[1]
    if steps <= lead_steps:
        raise ConfigError(
            f"lead_steps: expected fewer than the {steps} saved time steps of {trajectories.domain!r}, got "
            f"{lead_steps}"
        )
    starts = np.arange(0, steps - lead_steps, stride)
    inputs = data[:, starts].reshape(-1, *data.shape[2:])
    targets = data[:, starts + lead_steps].reshape(-1, *data.shape[2:])
    return PairSet(
        field=trajectories.field,
        inputs=torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)),
        targets=torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32)),
        domain=trajectories.domain,
        lead_time=lead_steps * trajectories.dt,
    )


def to_rollouts(trajectories: Trajectories, *, steps: int, lead_steps: int, stride: int) -> RolloutSet:
    """Items ``u[t]`` with ``(u[t + lead_steps], …, u[t + steps · lead_steps])`` for ``t = 0, stride, …``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps: expected an integer ≥ 1, got {steps!r}")
    data = trajectories.data
    span = steps * lead_steps
    if data.shape[1] <= span:
        raise ConfigError(
            f"steps × lead_steps: expected fewer than the {data.shape[1]} saved time steps of "
            f"{trajectories.domain!r}, got {steps} × {lead_steps}"
        )
    starts = np.arange(0, data.shape[1] - span, stride)
    later = starts[:, None] + lead_steps * np.arange(1, steps + 1)[None, :]
    inputs = data[:, starts].reshape(-1, *data.shape[2:])
    frames = data[:, later].reshape(-1, steps, *data.shape[2:])
    return RolloutSet(
        field=trajectories.field,
        inputs=torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)),
        trajectories=torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)),
        domain=trajectories.domain,
        lead_time=lead_steps * trajectories.dt,
    )


def uniform_spacing(coordinates: Any, name: str) -> float:
    """The step of evenly spaced ``coordinates`` (1-D, or one row per sample); else :class:`ConfigError`."""
    values = np.asarray(coordinates, dtype=np.float64)
    if values.ndim not in (1, 2) or values.shape[-1] < 2:
        raise ConfigError(f"{name}: expected at least two coordinates per axis, got shape {values.shape}")
    steps = np.diff(values, axis=-1)
    step = float(steps.flat[0])
    if not math.isfinite(step) or step <= 0 or not np.allclose(steps, step, rtol=1e-4, atol=0.0):
        raise ConfigError(
            f"{name}: expected evenly spaced increasing coordinates, got steps from {steps.min()} to "
            f"{steps.max()}"
        )
    return step


__all__ = ["Reader", "Trajectories", "to_pairs", "to_rollouts", "uniform_spacing"]
