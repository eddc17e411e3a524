# examples/data/write_pdebench_cfd.py
"""Your arrays in PDEBench's 2D_CFD layout, then read back with safesvd_data.PDEBenchCFD.

Stand-ins for your data: density, pressure and velocity (N, T, X, Y) on a periodic [0, 1)² grid."""

import h5py
import numpy as np

from safesvd_data import PDEBenchCFD

n, steps, nx, ny, dt = 4, 10, 32, 32, 0.05
rng = np.random.default_rng(0)
fields = {name: rng.standard_normal((n, steps, nx, ny)).astype(np.float32) for name in ("density", "pressure", "Vx", "Vy")}

# The boundary is read from the file name: the token "periodic" (or "trans", transmissive); else pass periodic=
path = "2D_CFD_mine_periodic_Train.hdf5"
with h5py.File(path, "w") as file:
    for name, values in fields.items():
        file[name] = values                                                 # (N, T, X, Y) each
    file["x-coordinate"] = ((np.arange(nx) + 0.5) / nx).astype(np.float32)  # cell centres, evenly spaced
    file["y-coordinate"] = ((np.arange(ny) + 0.5) / ny).astype(np.float32)
    file["t-coordinate"] = (dt * np.arange(steps + 1)).astype(np.float32)   # PDEBench stores T + 1 times
    file.attrs.update({"eta": 0.01, "zeta": 0.01, "M": 0.1})                # the run's parameters (not read)

pairs = PDEBenchCFD(path=path, lead_steps=2).read()
print(pairs.field.channels, [role.value for role in pairs.field.roles], tuple(pairs.inputs.shape))
assert pairs.field.channels == ("density", "pressure", "Vx", "Vy") and pairs.field.periodic == (True, True)
assert np.array_equal(pairs.targets[0, 3].numpy(), fields["Vy"][0, 2])       # lead_steps=2: the target is t = 2
assert abs(pairs.lead_time - 2 * dt) < 1e-6 and abs(pairs.field.spacing[0] - 1 / nx) < 1e-6
