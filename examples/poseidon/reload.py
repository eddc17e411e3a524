# examples/poseidon/reload.py
"""Reload the compressed model: ScOT from the same checkpoint folder, then the compressed weights."""

import torch
from scOT.model import ScOT
from scOT.problems.base import get_dataset
from torch.utils.data import DataLoader

from safesvd_core import load_compressed, read_manifest

CHECKPOINT = "Poseidon-T"

model = load_compressed(ScOT.from_pretrained(CHECKPOINT).eval(), "poseidon-t-0.4")   # use the module it returns
manifest = read_manifest("poseidon-t-0.4")
print(f"{sum(p.numel() for p in model.parameters()):,} parameters; the manifest: {sorted(manifest)}")

test = get_dataset("fluids.incompressible.Sines", which="test", num_trajectories=1, data_path="data")
batch = next(iter(DataLoader(test, batch_size=8)))
with torch.no_grad():
    output = model(**batch)   # ScOT's output as before: .output, and .loss with labels
print(f"prediction {tuple(output.output.shape)}, loss {float(output.loss):.4f}")
