# examples/data/write_pdebench_shallow_water.py
"""Your arrays in PDEBench's 2-D shallow-water (radial dam break) layout, then read back with
safesvd_data.PDEBenchShallowWater.

Stand-in for your data: the water height h (N, T, X, Y); the layout stores no velocity."""

import h5py
import numpy as np

from safesvd_data import PDEBenchShallowWater

n, steps, nx, ny, dt = 4, 10, 32, 32, 0.05
h = 1 + np.random.default_rng(0).random((n, steps, nx, ny), dtype=np.float32)

with h5py.File("2D_rdb_mine.h5", "w") as file:
    for index in range(n):                                              # one group per trajectory: 0000, 0001, …
        group = file.create_group(f"{index:04d}")
        group["data"] = h[index, ..., None]                             # (T, X, Y, 1)
        group["grid/x"] = np.linspace(-2.5, 2.5, nx, dtype=np.float32)
        group["grid/y"] = np.linspace(-2.5, 2.5, ny, dtype=np.float32)
        group["grid/t"] = (dt * np.arange(steps)).astype(np.float32)

pairs = PDEBenchShallowWater(path="2D_rdb_mine.h5").read()
print(pairs.field.channels, [role.value for role in pairs.field.roles], tuple(pairs.inputs.shape))
assert pairs.field.channels == ("h",) and pairs.field.roles[0].value == "water_height"
assert np.array_equal(pairs.targets[-1, 0].numpy(), h[-1, -1]) and abs(pairs.field.spacing[0] - 5 / (nx - 1)) < 1e-6
