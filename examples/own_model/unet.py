# examples/own_model/unet.py
"""The U-Net of unet_model.py compressed block by block: block_names for a model that is not a
chain, and what the engine does with it."""

import math
import os

import torch
from unet_model import UNet

from safesvd_core import FieldDescription, compress, evaluate
from safesvd_data import NavierStokesGenerator

STEPS = int(os.environ.get("TRAIN_STEPS", "300"))  # the examples test sets a few
torch.manual_seed(0)
model = UNet()
train = NavierStokesGenerator(samples=128, size=32, seed=0).generate()
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
for step in range(STEPS):
    index = torch.randint(0, len(train), (16,))
    loss = torch.mean((model(train.inputs[index]) - train.targets[index]) ** 2)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
model.eval()

calibration = list(NavierStokesGenerator(samples=32, size=32, seed=1).generate().batches(16))
test = list(NavierStokesGenerator(samples=32, size=32, seed=2).generate().batches(16))
field = FieldDescription.uniform(channels=("u", "v"), roles=("velocity_x", "velocity_y"), dim=2,
                                 spacing=2 * math.pi / 32, periodic=True)
# The blocks: the modules that hold layers and are called once per forward, in forward order (the
# ModuleLists are never called: they are not blocks). The 1×1 merges and the projection lie outside
# every block: a stage each.
blocks = ["encoder.0", "encoder.1", "middle", "decoder.0", "decoder.1"]
results = {}
for label, names in (("blocks", blocks), ("no blocks", None)):
    options = {"field_description": field, "block_names": names}
    results[label] = result = compress(model, calibration, ratio=0.5, adapter_options=options)
    change = evaluate(model, result.model, test, adapter_options=options).metric("base loss").signed_change_percent
    print(f"{label}: {len(result.stages)} stages, passes {dict(result.passes)}, "
          f"stages {result.timings['stages']:.2f} s, base loss {change:+.1f} %")
print("stages:", results["blocks"].stages)
with torch.no_grad():  # one-step items: the block stages give the exact per-layer result
    x = test[0][0]
    assert torch.allclose(results["blocks"].model(x), results["no blocks"].model(x), atol=1e-5)
