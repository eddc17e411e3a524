# examples/adapters/poseidon_compress.py
import torch
from torch.utils.data import DataLoader
from scOT.model import ScOT
from scOT.problems.base import get_dataset
from safesvd_core import compress, save_compressed

model = ScOT.from_pretrained("camlab-ethz/Poseidon-T").eval()       # or a fine-tuned checkpoint directory
dataset = get_dataset("fluids.incompressible.Sines", which="train", num_trajectories=128, data_path="data")
loader = DataLoader(dataset, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
calibration = [batch for _, batch in zip(range(16), loader)]        # 128 samples

result = compress(model, calibration, ratio=0.4, adapter="transformers",
                  adapter_options={"channels": ["rho", "u", "v", "p"],   # the data set's label order
                                   "roles": ["density", "velocity_x", "velocity_y", "pressure"]})
print(result.met_budget, result.passes)      # stage passes = blocks + layers outside blocks
save_compressed(result, "poseidon-t-0.4.safetensors")
