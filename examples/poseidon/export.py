# examples/poseidon/export.py
"""The compressed model as dense weights of ScOT's own architecture, saved as a checkpoint folder that
Poseidon's code loads with ScOT.from_pretrained, without safesvd."""

import torch
from safetensors.torch import load_file
from scOT.model import ScOT
from scOT.problems.base import get_dataset
from torch.utils.data import DataLoader

from safesvd_core import export_dense, load_compressed

CHECKPOINT = "Poseidon-T"

compressed = load_compressed(ScOT.from_pretrained(CHECKPOINT).eval(), "poseidon-t-0.4")
export_dense(compressed, "poseidon-t-0.4-dense.safetensors", original=ScOT.from_pretrained(CHECKPOINT), overwrite=True)

dense = ScOT.from_pretrained(CHECKPOINT).eval()
dense.load_state_dict(load_file("poseidon-t-0.4-dense.safetensors"))
dense.save_pretrained("Poseidon-T-0.4-dense")   # config.json + model.safetensors, as Poseidon writes them

batch = next(iter(DataLoader(get_dataset("fluids.incompressible.Sines", which="test", num_trajectories=1,
                                         data_path="data"), batch_size=8)))
with torch.no_grad():
    torch.testing.assert_close(ScOT.from_pretrained("Poseidon-T-0.4-dense")(**batch).output, compressed(**batch).output)
