# examples/adapters/poseidon_reload.py
from torch.utils.data import DataLoader
from scOT.model import ScOT
from scOT.problems.base import get_dataset
from safesvd_core import load_compressed

fresh = ScOT.from_pretrained("camlab-ethz/Poseidon-T").eval()
load_compressed(fresh, "poseidon-t-0.4.safetensors")
dataset = get_dataset("fluids.incompressible.Sines", which="test", num_trajectories=8, data_path="data")
batch = next(iter(DataLoader(dataset, batch_size=8)))
output = fresh(**batch)                      # .output, and .loss with labels, as before
