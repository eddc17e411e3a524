# examples/poseidon/evaluate.py
"""The compressed model against the original on Poseidon's test split: Poseidon's training loss (its
config's channel groups and p) and the incompressible Navier–Stokes metrics."""

import torch
from scOT.model import ScOT
from scOT.problems.base import get_dataset
from torch.utils.data import DataLoader

from safesvd_core import evaluate, load_compressed

CHECKPOINT = "Poseidon-T"
FIELDS = {"channels": ["rho", "u", "v", "p"], "roles": ["density", "velocity_x", "velocity_y", "pressure"],
          "periodic": True}

original = ScOT.from_pretrained(CHECKPOINT).eval()
compressed = load_compressed(ScOT.from_pretrained(CHECKPOINT).eval(), "poseidon-t-0.4")
test = get_dataset("fluids.incompressible.Sines", which="test", num_trajectories=1, data_path="data")
batches = [batch for _, batch in zip(range(8), DataLoader(test, batch_size=16, shuffle=True, num_workers=2,
                                                          generator=torch.Generator().manual_seed(0)))]

report = evaluate(original, compressed, batches, adapter="transformers", adapter_options=FIELDS,
                  family="ns-incompressible")
print(report.to_markdown())   # base loss, sobolev, divergence-free, vorticity: original, compressed, change

with torch.no_grad():   # the base loss is ScOT's own training loss
    own = sum(float(original(**batch).loss) for batch in batches) / len(batches)
assert abs(report.metric("base loss").original - own) <= 1e-5 * own
