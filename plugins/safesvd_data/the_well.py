"""Reader of The Well's HDF5 layout (PolymathicAI/the_well, ``the_well/data/datasets.py`` and its
data-format reference).

Root attributes ``dataset_name``, ``grid_type``, ``n_spatial_dims``, ``n_trajectories``; group
``dimensions`` (attribute ``spatial_dims``, datasets per axis and ``time``); groups ``t0_fields``,
``t1_fields``, ``t2_fields`` (attribute ``field_names``) whose datasets are
``(n_traj, n_steps, *grid, D, …)`` with attributes ``sample_varying``, ``time_varying`` and
``dim_varying`` (a leading axis or a grid axis that does not vary is left out, or stored with
size 1, and is broadcast); group ``boundary_conditions`` of
groups with ``bc_type`` (``periodic``, ``wall``, ``open``) and ``associated_dims``. As in The Well,
a tensor field of order ``k`` becomes ``D^k`` channels ``name_x``, ``name_y``, ``name_xx``, …
in the order of ``spatial_dims``; an axis without a periodic boundary is not periodic.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import numpy as np

from safesvd_core.plugin import (
    AXES,
    MOMENTUM_ROLES,
    VELOCITY_ROLES,
    ConfigError,
    FieldDescription,
    Role,
    parse_role,
)

from ._hdf5 import attribute, member
from ._reader import Reader, Trajectories, uniform_spacing

#: Scalar (``t0``) field name → role; any other scalar field is ``scalar``.
SCALAR_ROLES: Mapping[str, Role] = {
    "density": Role.DENSITY,
    "pressure": Role.PRESSURE,
    "energy": Role.ENERGY,
    "height": Role.WATER_HEIGHT,
    "concentration": Role.CONCENTRATION,
    "tracer": Role.CONCENTRATION,
    "A": Role.CONCENTRATION,  # gray_scott_reaction_diffusion
    "B": Role.CONCENTRATION,
}

#: Vector (``t1``) field name → its component roles by axis; any other vector field is ``scalar``.
VECTOR_ROLES: Mapping[str, Mapping[str, Role]] = {"velocity": VELOCITY_ROLES, "momentum": MOMENTUM_ROLES}


def _roles(value: Any) -> dict[str, Role]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"roles must be a mapping channel name → role, got {value!r}")
    return {str(name): parse_role(role, f"roles[{name!r}]") for name, role in value.items()}


@attrs.frozen(kw_only=True)
class TheWell(Reader):
    """The time-varying fields of a Well file as channels; ``roles`` overrides roles by channel name."""

    layout: ClassVar[str] = "The Well"
    roles: Mapping[str, Role] = attrs.field(factory=dict, converter=_roles)

    def load(self) -> Trajectories:
        with self._open() as file:
            grid_type = attribute(file, "grid_type", layout=self.layout)
            if grid_type != "cartesian":
                raise ConfigError(
                    f"grid_type: only 'cartesian' Well files are read, {self.path.name} has {grid_type!r}"
                )
            dims = member(file, "dimensions", layout=self.layout)
            axes = [str(axis) for axis in attribute(dims, "spatial_dims", layout=self.layout)]
            if len(axes) != int(attribute(file, "n_spatial_dims", layout=self.layout)) or sorted(
                axes
            ) != sorted(AXES[: len(axes)]):
                raise ConfigError(
                    f"{self.layout}: expected spatial_dims ordering x, y, z matching n_spatial_dims, got "
                    f"{axes}"
                )
            spacing = [
                uniform_spacing(member(dims, axis, layout=self.layout)[()], f"dimensions/{axis}")
                for axis in axes
            ]
            times = member(dims, "time", layout=self.layout)[()]
            dt = uniform_spacing(times, "dimensions/time")
            count = int(attribute(file, "n_trajectories", layout=self.layout))
            count = min(count, self.trajectories or count)
            grid = tuple(member(dims, axis, layout=self.layout).shape[-1] for axis in axes)
            names, roles, arrays = [], [], []
            for order in range(3):
                group = member(file, f"t{order}_fields", layout=self.layout)
                for name in attribute(group, "field_names", layout=self.layout):
                    dataset = member(group, name, layout=self.layout)
                    if not attribute(dataset, "time_varying", layout=self.layout):
                        continue
                    arrays.append(self._field(dataset, count, np.shape(times)[-1], grid, order))
                    for component in itertools.product(axes, repeat=order):
                        names.append(f"{name}_{''.join(component)}" if order else name)
                        roles.append(self._role(name, component))
            periodic = self._periodic(file, axes)
            domain = self._label(str(attribute(file, "dataset_name", layout=self.layout)))
        if not arrays:
            raise ConfigError(f"{self.layout}: {self.path.name} has no time-varying field")
        if unknown := sorted(set(self.roles) - set(names)):
            raise ConfigError(
                f"roles: no channel named {', '.join(unknown)}; channels are {', '.join(names)}"
            )
        roles = [self.roles.get(name, role) for name, role in zip(names, roles, strict=True)]
        field = FieldDescription(channels=names, roles=roles, spacing=spacing, periodic=periodic, axes=axes)
        return Trajectories(data=np.concatenate(arrays, axis=2), field=field, domain=domain, dt=dt)

    def _field(self, dataset: Any, count: int, steps: int, grid: tuple[int, ...], order: int) -> np.ndarray:
        """``(count, steps, D**order, *grid)``: the dataset with broadcast axes filled in."""
        varying = [bool(flag) for flag in attribute(dataset, "dim_varying", layout=self.layout)]
        data = (
            dataset[:count] if attribute(dataset, "sample_varying", layout=self.layout) else dataset[()][None]
        )
        absent = [2 + axis for axis, flag in enumerate(varying) if not flag]
        if data.ndim == 2 + len(grid) + order - len(absent):  # constant axes left out, not stored as size 1
            data = np.expand_dims(data, tuple(absent))
        shape = (data.shape[0], steps, *(n if flag else 1 for n, flag in zip(grid, varying, strict=True)))
        components = data.shape[len(shape) :]
        if (
            len(varying) != len(grid)
            or data.shape[: len(shape)] != shape
            or components != (len(grid),) * order
        ):
            raise ConfigError(
                f"{self.layout}: {dataset.name} has shape {dataset.shape}, which does not fit "
                f"{count} trajectories × {steps} steps × grid {grid} for a tensor of order {order}"
            )
        full = np.broadcast_to(data, (count, steps, *grid, *components))
        return np.moveaxis(full.reshape(count, steps, *grid, -1), -1, 2)

    @staticmethod
    def _role(name: str, component: tuple[str, ...]) -> Role:
        if not component:
            return SCALAR_ROLES.get(name, Role.SCALAR)
        if len(component) == 1 and name in VECTOR_ROLES:
            return VECTOR_ROLES[name][component[0]]
        return Role.SCALAR

    def _periodic(self, file: Any, axes: list[str]) -> list[bool]:
        periodic = dict.fromkeys(axes, False)
        for name, boundary in member(file, "boundary_conditions", layout=self.layout).items():
            if str(attribute(boundary, "bc_type", layout=self.layout)).upper() == "PERIODIC":
                for axis in attribute(boundary, "associated_dims", layout=self.layout):
                    if axis not in periodic:
                        raise ConfigError(
                            f"{self.layout}: boundary {name!r} names axis {axis!r}, not among {axes}"
                        )
                    periodic[axis] = True
        return [periodic[axis] for axis in axes]


__all__ = ["SCALAR_ROLES", "VECTOR_ROLES", "TheWell"]
