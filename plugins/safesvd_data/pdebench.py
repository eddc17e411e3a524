"""Readers of PDEBench's HDF5 layouts (read from pdebench/PDEBench; the package itself needs Python < 3.11).

- ``2D_CFD`` (``data_gen_NLE/Data_Merge.py``): datasets ``density``, ``pressure``, ``Vx``, ``Vy``
  ``(N, T, X, Y)``, coordinates ``x-coordinate``, ``y-coordinate`` (cell centres) and
  ``t-coordinate`` (one entry more than ``T``); the boundary is in the file name (``periodic`` or
  ``trans``). 1-D and 3-D files (no ``Vy`` / with ``Vz``, ``z-coordinate``) read the same way.
- diffusion–reaction and shallow water (``gen_diff_react.py``, ``sim_radial_dam_break.py``): one
  group per sample ``0000, 0001, …`` with ``data`` ``(T, *grid, C)`` and ``grid/x``, ``grid/y``,
  ``grid/t``. Diffusion–reaction stores its grid as ``(y, x)`` (``sim_diff_react.py`` reshapes
  to ``(Ny, Nx)``) with no-flux walls; the dam break stores ``(x, y)`` with outflow edges.
- incompressible NS (``src/data_io.py``): ``velocity`` ``(N, T, X, Y, 2)``, ``particles``
  ``(N, T, X, Y, 1)``, ``force`` ``(N, X, Y, 2)``, ``t`` ``(N, T)``; no spatial coordinates, walls.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
import numpy as np

from safesvd_core.plugin import ConfigError, FieldDescription, Role, positive

from ._hdf5 import member
from ._reader import Reader, Trajectories, uniform_spacing

_AXES = ("x", "y", "z")


def _optional_bool(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"{attribute.name} must be True, False or None, got {value!r}")


def _time_step(times: Any, name: str) -> float:
    return uniform_spacing(times, name) if np.size(times) > 1 else math.nan


@attrs.frozen(kw_only=True)
class PDEBenchCFD(Reader):
    """Compressible NS (``2D_CFD``): channels ``density, pressure, Vx, Vy`` with their roles.

    ``periodic``: every axis periodic or not; by default from the file name's ``periodic`` or
    ``trans`` token (a name with neither is an error asking for it).
    """

    layout: ClassVar[str] = "PDEBench CFD"
    periodic: bool | None = attrs.field(default=None, validator=_optional_bool)

    def load(self) -> Trajectories:
        with self._open() as file:
            dim = member(file, "density", layout=self.layout).ndim - 2
            if dim not in (1, 2, 3):
                raise ConfigError(
                    f"{self.layout}: expected 'density' of shape (N, T, *grid) with 1 to 3 axes"
                )
            names = ("density", "pressure", *(f"V{axis}" for axis in _AXES[:dim]))
            arrays = [member(file, name, layout=self.layout)[: self.trajectories] for name in names]
            for name, array in zip(names, arrays, strict=True):
                if array.shape != arrays[0].shape:
                    raise ConfigError(
                        f"{self.layout}: {name!r} has shape {array.shape}, 'density' {arrays[0].shape}"
                    )
            spacing = [
                uniform_spacing(
                    member(file, f"{axis}-coordinate", layout=self.layout)[()], f"{axis}-coordinate"
                )
                for axis in _AXES[:dim]
            ]
            dt = _time_step(member(file, "t-coordinate", layout=self.layout)[()], "t-coordinate")
        roles = (Role.DENSITY, Role.PRESSURE, Role.VELOCITY_X, Role.VELOCITY_Y, Role.VELOCITY_Z)[: len(names)]
        periodic = self._periodic()
        field = FieldDescription(channels=names, roles=roles, spacing=spacing, periodic=[periodic] * dim)
        return Trajectories(data=np.stack(arrays, axis=2), field=field, domain=self._label(), dt=dt)

    def _periodic(self) -> bool:
        if self.periodic is not None:
            return self.periodic
        tokens = set(self.path.stem.split("_"))
        if ("periodic" in tokens) == ("trans" in tokens):
            raise ConfigError(
                f"periodic: the file name {self.path.name!r} says neither 'periodic' nor 'trans' "
                "(PDEBench's boundary token); pass periodic=True or False"
            )
        return "periodic" in tokens


@attrs.frozen(kw_only=True)
class _SampleGroups(Reader):
    """The one-group-per-sample layout: ``NNNN/data`` ``(T, *grid, C)`` and ``NNNN/grid/{x, y, t}``."""

    layout: ClassVar[str]
    channels: ClassVar[tuple[str, ...]]
    roles: ClassVar[tuple[Role, ...]]
    axes: ClassVar[tuple[str, ...]]
    periodic: ClassVar[bool] = False

    def load(self) -> Trajectories:
        with self._open() as file:
            keys = sorted(key for key in file if hasattr(file[key], "keys") and "data" in file[key])[
                : self.trajectories
            ]
            if not keys:
                raise ConfigError(f"{self.layout}: expected sample groups holding 'data' in {self.path}")
            arrays = [member(file[key], "data", layout=self.layout)[()] for key in keys]
            first = file[keys[0]]
            grid = member(first, "grid", layout=self.layout)
            shape = arrays[0].shape
            if len(shape) != 2 + len(self.axes) or shape[-1] != len(self.channels):
                raise ConfigError(
                    f"{self.layout}: expected {keys[0]}/data of shape (T, {', '.join(self.axes)}, "
                    f"{len(self.channels)}), got {shape}"
                )
            for key, array in zip(keys, arrays, strict=True):
                if array.shape != shape:
                    raise ConfigError(
                        f"{self.layout}: {key}/data has shape {array.shape}, {keys[0]}/data {shape}"
                    )
            spacing = [
                uniform_spacing(member(grid, axis, layout=self.layout)[()], f"{keys[0]}/grid/{axis}")
                for axis in self.axes
            ]
            dt = _time_step(member(grid, "t", layout=self.layout)[()], f"{keys[0]}/grid/t")
        field = FieldDescription(
            channels=self.channels,
            roles=self.roles,
            spacing=spacing,
            periodic=[self.periodic] * len(self.axes),
            axes=self.axes,
        )
        data = np.moveaxis(np.stack(arrays), -1, 2)  # (n, T, C, *grid)
        return Trajectories(data=data, field=field, domain=self._label(), dt=dt)


@attrs.frozen(kw_only=True)
class PDEBenchDiffusionReaction(_SampleGroups):
    """2-D diffusion–reaction (FitzHugh–Nagumo): activator ``u`` and inhibitor ``v``, no-flux walls."""

    layout: ClassVar[str] = "PDEBench diffusion-reaction"
    channels: ClassVar[tuple[str, ...]] = ("u", "v")
    roles: ClassVar[tuple[Role, ...]] = (Role.CONCENTRATION, Role.CONCENTRATION)
    axes: ClassVar[tuple[str, ...]] = ("y", "x")


@attrs.frozen(kw_only=True)
class PDEBenchShallowWater(_SampleGroups):
    """2-D shallow water (radial dam break): water height ``h`` only, outflow edges."""

    layout: ClassVar[str] = "PDEBench shallow water"
    channels: ClassVar[tuple[str, ...]] = ("h",)
    roles: ClassVar[tuple[Role, ...]] = (Role.WATER_HEIGHT,)
    axes: ClassVar[tuple[str, ...]] = ("x", "y")


@attrs.frozen(kw_only=True)
class PDEBenchIncompressibleNS(Reader):
    """Incompressible NS: channels ``Vx, Vy`` and, with ``particles``, the advected marker.

    The file stores no spatial coordinates: ``extent`` is the side of the square domain (1, the
    generator config's ``domain_size``), so the spacing is ``extent / X``. Walls, not periodic.
    The static ``force`` is not a channel (it has no time axis).
    """

    layout: ClassVar[str] = "PDEBench incompressible NS"
    extent: float = attrs.field(default=1.0, validator=positive)
    particles: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    def load(self) -> Trajectories:
        with self._open() as file:
            velocity = member(file, "velocity", layout=self.layout)[: self.trajectories]
            if velocity.ndim != 5 or velocity.shape[-1] != 2:
                raise ConfigError(
                    f"{self.layout}: expected 'velocity' of shape (N, T, X, Y, 2), got {velocity.shape}"
                )
            parts = [velocity]
            if self.particles:
                particles = member(file, "particles", layout=self.layout)[: self.trajectories]
                if particles.shape != (*velocity.shape[:-1], 1):
                    raise ConfigError(
                        f"{self.layout}: expected 'particles' of shape {(*velocity.shape[:-1], 1)}, got "
                        f"{particles.shape}"
                    )
                parts.append(particles)
            dt = _time_step(member(file, "t", layout=self.layout)[:1], "t")
        names = ("Vx", "Vy", "particles")[: 2 + self.particles]
        roles = (Role.VELOCITY_X, Role.VELOCITY_Y, Role.CONCENTRATION)[: len(names)]
        spacing = [self.extent / n for n in velocity.shape[2:4]]
        field = FieldDescription(channels=names, roles=roles, spacing=spacing, periodic=(False, False))
        data = np.moveaxis(np.concatenate(parts, axis=-1), -1, 2)
        return Trajectories(data=data, field=field, domain=self._label(), dt=dt)


__all__ = ["PDEBenchCFD", "PDEBenchDiffusionReaction", "PDEBenchIncompressibleNS", "PDEBenchShallowWater"]
