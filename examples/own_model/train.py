# examples/own_model/train.py
"""Train the operator on the seeded Navier–Stokes generator; write my_operator.safetensors."""

import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from safesvd_data import NavierStokesGenerator
from my_operator import build

STEPS = int(os.environ.get("TRAIN_STEPS", 800))  # the examples test sets a few
torch.manual_seed(0)
train = NavierStokesGenerator(samples=256, size=32, seed=0).generate()
model = build()
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=STEPS)
for step in range(STEPS):
    index = torch.randint(0, len(train), (32,))
    loss = torch.mean((model(train.inputs[index]) - train.targets[index]) ** 2)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
test = NavierStokesGenerator(samples=64, size=32, seed=2).generate()
with torch.no_grad():
    mse = torch.mean((model(test.inputs) - test.targets) ** 2).item()
print(f"test MSE {mse:.5f} (copying the input: {torch.mean((test.inputs - test.targets) ** 2).item():.5f})")
save_file(model.state_dict(), str(Path(__file__).with_name("my_operator.safetensors")))
