# examples/poseidon/compress.py
"""Compress a Poseidon checkpoint folder to 40 % of its parameters, calibrated on batches of Poseidon's
own data loader, and save the compressed weights."""

import torch
from scOT.model import ScOT
from scOT.problems.base import get_dataset
from torch.utils.data import DataLoader

from safesvd_core import compress, save_compressed

CHECKPOINT = "Poseidon-T"   # a checkpoint folder (config.json + weights): Poseidon-T, -B, -L or your fine-tuned one
FIELDS = {"channels": ["rho", "u", "v", "p"],          # the data set's channels, in order
          "roles": ["density", "velocity_x", "velocity_y", "pressure"], "periodic": True}

model = ScOT.from_pretrained(CHECKPOINT).eval()
train = get_dataset("fluids.incompressible.Sines", which="train", num_trajectories=128, data_path="data")
loader = DataLoader(train, batch_size=8, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0))
calibration = [batch for _, batch in zip(range(16), loader)]   # 16 dicts: pixel_values, labels, time, pixel_mask

result = compress(model, calibration, ratio=0.4, adapter="transformers", adapter_options=FIELDS,
                  family="ns-incompressible")
factored = sum(rank is not None for rank in result.ranks.values())   # the rest stay dense
print(f"{result.params_after:,} of {result.params_before:,} parameters, budget met: {result.met_budget}, "
      f"{factored} of {len(result.ranks)} compressible layers factored, {result.passes['stages']} stages")
save_compressed(result, "poseidon-t-0.4")   # a folder: model.safetensors + manifest.json
