# examples/quickstart/api.py
"""The Python API on the bundled reference model: compress, evaluate, save, load."""

import torch

from safesvd_core import compress, evaluate, load_compressed, save_compressed
from safesvd_zoo import reference

model = reference.load()                                   # a trained 2-D Navier–Stokes transformer
calibration = reference.batches("calibration")             # (input, target) batches
test = reference.batches("test")
options = {"field_description": reference.FIELD,           # what the channels are (u, v on a periodic grid)
           "include": ["blocks.*"], "block_names": reference.block_names(model)}

result = compress(model, calibration, ratio=0.5, family="ns-incompressible", adapter_options=options)
print(result.summary())                                    # rank and solve path per layer, the budget
report = evaluate(model, result.model, test, adapter_options=options, family="ns-incompressible")
print(report.to_markdown())                                # signed changes: negative is better

save_compressed(result, "reference-0.5")                   # model.safetensors + manifest.json
loaded = load_compressed(reference.load(), "reference-0.5")
x = test[0][0]
with torch.no_grad():
    assert torch.equal(loaded(x), result.model(x))
