# examples/data/write_pdebench_diffusion_reaction.py
"""Your arrays in PDEBench's 2-D diffusion-reaction layout, then read back with
safesvd_data.PDEBenchDiffusionReaction.

Stand-ins for your data: two species u, v (N, T, Y, X): rows along y, as PDEBench stores them."""

import h5py
import numpy as np

from safesvd_data import PDEBenchDiffusionReaction

n, steps, ny, nx, dt = 4, 10, 32, 32, 0.05
rng = np.random.default_rng(0)
u = rng.standard_normal((n, steps, ny, nx)).astype(np.float32)
v = rng.standard_normal((n, steps, ny, nx)).astype(np.float32)

with h5py.File("2D_diff-react_mine.h5", "w") as file:
    for index in range(n):                                              # one group per trajectory: 0000, 0001, …
        group = file.create_group(f"{index:04d}")
        group["data"] = np.stack([u[index], v[index]], axis=-1)        # (T, Y, X, 2): the channels last
        group["grid/x"] = np.linspace(-1, 1, nx, dtype=np.float32)     # evenly spaced coordinates
        group["grid/y"] = np.linspace(-1, 1, ny, dtype=np.float32)
        group["grid/t"] = (dt * np.arange(steps)).astype(np.float32)

pairs = PDEBenchDiffusionReaction(path="2D_diff-react_mine.h5").read()
print(pairs.field.channels, pairs.field.axes, tuple(pairs.inputs.shape))
assert pairs.field.axes == ("y", "x") and pairs.field.periodic == (False, False)  # tensor dim 2 is y; no-flux walls
assert np.array_equal(pairs.inputs[0, 1].numpy(), v[0, 0]) and np.array_equal(pairs.targets[0, 0].numpy(), u[0, 1])
