# examples/data/write_the_well.py
"""Your arrays in The Well's HDF5 layout, then read back with safesvd_data.TheWell.

Stand-ins for your data: a scalar field phi (N, T, X, Y) and a velocity (N, T, X, Y, 2) on a periodic
[0, 1)² grid, saved every dt. The file also loads with The Well's own WellDataset (masks, scalars)."""

import h5py
import numpy as np

from safesvd_data import TheWell

n, steps, nx, ny, dt = 4, 10, 32, 32, 0.01
rng = np.random.default_rng(0)
phi = rng.standard_normal((n, steps, nx, ny)).astype(np.float32)           # a scalar field: (N, T, X, Y)
velocity = rng.standard_normal((n, steps, nx, ny, 2)).astype(np.float32)   # a vector field: components last, x then y

with h5py.File("allen_cahn.hdf5", "w") as file:
    file.attrs.update({"dataset_name": "allen_cahn", "grid_type": "cartesian", "n_spatial_dims": 2, "n_trajectories": n})
    dims = file.create_group("dimensions")
    dims.attrs["spatial_dims"] = ["x", "y"]                                   # the order of the grid axes
    for name, values in {"x": np.arange(nx) / nx, "y": np.arange(ny) / ny, "time": dt * np.arange(steps)}.items():
        dims[name] = values.astype(np.float32)                                # evenly spaced: the step is the spacing
        dims[name].attrs.update({"sample_varying": False, "time_varying": name == "time"})
    boundaries = file.create_group("boundary_conditions")
    for axis, size in (("x", nx), ("y", ny)):                                 # periodic in x and in y
        boundary = boundaries.create_group(f"{axis}_periodic")
        boundary.attrs.update({"bc_type": "PERIODIC", "associated_dims": [axis], "associated_fields": [],
                               "sample_varying": False, "time_varying": False})
        boundary["mask"] = np.isin(np.arange(size), (0, size - 1))           # the boundary cells along the axis
    file.create_group("scalars").attrs["field_names"] = []                   # no scalar (non-field) quantities
    for order, fields in enumerate(({"phi": phi}, {"velocity": velocity}, {})):   # t0: scalars, t1: vectors, t2: tensors
        group = file.create_group(f"t{order}_fields")
        group.attrs["field_names"] = list(fields)
        for name, values in fields.items():
            group[name] = values
            group[name].attrs.update({"sample_varying": True, "time_varying": True, "dim_varying": [True, True]})

# phi is no name the reader knows (it would be a scalar): give it its role
pairs = TheWell(path="allen_cahn.hdf5", roles={"phi": "concentration"}).read()
print(pairs.field.channels, [role.value for role in pairs.field.roles], tuple(pairs.inputs.shape))
assert pairs.field.channels == ("phi", "velocity_x", "velocity_y") and pairs.field.periodic == (True, True)
assert np.array_equal(pairs.inputs[0, 0].numpy(), phi[0, 0])                # sample 0: trajectory 0, t = 0
assert np.array_equal(pairs.targets[0, 2].numpy(), velocity[0, 1, ..., 1])  # its target: t = 1, velocity_y
assert pairs.inputs.shape == (n * (steps - 1), 3, nx, ny) and abs(pairs.lead_time - dt) < 1e-6
