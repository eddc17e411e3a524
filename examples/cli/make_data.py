# examples/cli/make_data.py
"""Write ns_incom.h5 in PDEBench's incompressible-NS layout: velocity (N, T, X, Y, 2), t (N, T)."""

import h5py
import numpy as np
import torch

from safesvd_data import NavierStokesGenerator

rollouts = NavierStokesGenerator(samples=24, size=32, seed=5).rollouts(steps=5)
frames = torch.cat([rollouts.inputs[:, None], rollouts.trajectories], dim=1)       # (N, T, 2, X, Y)
with h5py.File("ns_incom.h5", "w") as file:
    file["velocity"] = frames.permute(0, 1, 3, 4, 2).numpy()                      # (N, T, X, Y, 2)
    file["particles"] = np.zeros((*frames.shape[:2], 32, 32, 1), dtype=np.float32)
    file["force"] = np.zeros((len(frames), 32, 32, 2), dtype=np.float32)
    file["t"] = np.tile(np.arange(frames.shape[1], dtype=np.float32), (len(frames), 1))
