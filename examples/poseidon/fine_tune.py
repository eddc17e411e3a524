# examples/poseidon/fine_tune.py
"""Fine-tune the compressed model with a plain PyTorch loop on Poseidon's training loss (ScOT's own
.loss), save the trained values, and load them back onto the compressed structure."""

import torch
from safetensors.torch import load_file, save_file
from scOT.model import ScOT
from scOT.problems.base import get_dataset
from torch.utils.data import DataLoader

from safesvd_core import load_compressed

CHECKPOINT, STEPS = "Poseidon-T", 500

model = load_compressed(ScOT.from_pretrained(CHECKPOINT), "poseidon-t-0.4").train()
train = get_dataset("fluids.incompressible.Sines", which="train", num_trajectories=128, data_path="data")
loader = DataLoader(train, batch_size=8, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(1))
optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=1e-6)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, STEPS)

for step, batch in zip(range(1, STEPS + 1), loader):
    loss = model(**batch).loss   # Poseidon's loss: the config's channel groups and p, the pixel_mask applied
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    if step % 100 == 0 or step == STEPS:
        print(f"step {step}: loss {loss.item():.4f}")

save_file({name: value.contiguous() for name, value in model.state_dict().items()}, "poseidon-t-0.4-tuned.safetensors")
tuned = load_compressed(ScOT.from_pretrained(CHECKPOINT), "poseidon-t-0.4")   # the compressed structure (ranks) ...
tuned.load_state_dict(load_file("poseidon-t-0.4-tuned.safetensors"))          # ... with the fine-tuned values
