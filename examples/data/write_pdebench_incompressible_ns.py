# examples/data/write_pdebench_incompressible_ns.py
"""Your arrays in PDEBench's incompressible-NS layout, then read back with
safesvd_data.PDEBenchIncompressibleNS.

Stand-ins for your data: a velocity (N, T, X, Y, 2) and an advected marker (N, T, X, Y) on the
unit square, saved every dt; the layout stores no coordinates (the reader's extent gives them)."""

import h5py
import numpy as np

from safesvd_data import PDEBenchIncompressibleNS

n, steps, nx, ny, dt = 4, 10, 32, 32, 0.05
rng = np.random.default_rng(0)
velocity = rng.standard_normal((n, steps, nx, ny, 2)).astype(np.float32)   # components last, x then y
marker = rng.random((n, steps, nx, ny), dtype=np.float32)

with h5py.File("ns_incom_mine.h5", "w") as file:
    file["velocity"] = velocity                                             # (N, T, X, Y, 2)
    file["particles"] = marker[..., None]                                   # (N, T, X, Y, 1); or zeros, read with particles=False
    file["force"] = np.zeros((n, nx, ny, 2), dtype=np.float32)             # (N, X, Y, 2): static, not a channel
    file["t"] = np.tile(dt * np.arange(steps, dtype=np.float32), (n, 1))    # (N, T)

pairs = PDEBenchIncompressibleNS(path="ns_incom_mine.h5", extent=1.0).read()
print(pairs.field.channels, [role.value for role in pairs.field.roles], tuple(pairs.inputs.shape))
assert pairs.field.channels == ("Vx", "Vy", "particles") and pairs.field.spacing == (1 / nx, 1 / ny)
assert np.array_equal(pairs.inputs[0, 1].numpy(), velocity[0, 0, ..., 1]) and abs(pairs.lead_time - dt) < 1e-6
