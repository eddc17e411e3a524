# examples/own_model/compress_api.py
"""Compress the trained operator from Python: its fields, the family, evaluate, save and load."""

import math

import torch
from safetensors.torch import load_file

from safesvd_core import FieldDescription, compress, evaluate, load_compressed, save_compressed
from safesvd_data import NavierStokesGenerator
from my_operator import build

model = build()
model.load_state_dict(load_file("my_operator.safetensors"))
model.eval()
calibration = list(NavierStokesGenerator(samples=32, size=32, seed=1).generate().batches(16))
test = list(NavierStokesGenerator(samples=64, size=32, seed=2).generate().batches(32))

# What the channels are, for the physics terms: the generic adapter takes a FieldDescription
# (or its dict) as field_description=; it has no channels=/roles= options of its own.
field = FieldDescription.uniform(channels=("u", "v"), roles=("velocity_x", "velocity_y"), dim=2,
                                 spacing=2 * math.pi / 32, periodic=True)
options = {
    "field_description": field,
    "include": ["blocks.*"],  # the blocks' 1×1 convolutions; lift and projection stay as they are
    "block_names": [f"blocks.{i}" for i in range(len(model.blocks))],  # compressed block by block
}

result = compress(model, calibration, ratio=0.4, family="ns-incompressible", adapter_options=options)
print(result.summary())
print(f"λ = {result.lam:.3g} (lam='auto': 10 × the mean base loss / the mean Sobolev loss)")

report = evaluate(model, result.model, test, adapter_options=options, family="ns-incompressible")
print(report.to_markdown())  # signed changes: negative means the compressed model does better
print(f"Sobolev change: {report.metric('sobolev').signed_change_percent:+.1f} %")

save_compressed(result, "compressed")                # a folder: model.safetensors + manifest.json
restored = load_compressed(build(), "compressed")    # any freshly built model of the architecture
with torch.no_grad():
    assert torch.equal(restored(test[0][0]), result.model(test[0][0]))
