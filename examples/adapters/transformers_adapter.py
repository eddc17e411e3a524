# examples/adapters/transformers_adapter.py
"""The transformers adapter on the zoo's scot-ns (HF Swinv2, fields u, v): its skips, its coverage, a run."""

from safesvd_core import compress, registry
from safesvd_zoo import models

model = models.load("scot-ns")                               # needs safesvd[transformers]
batches = list(models.batches("scot-ns", "calibration"))     # Poseidon's dicts: pixel_values, labels, time
adapter = registry("model_adapter").create(      # the fields: channels, roles, masked (no data), periodic, ...
    "transformers", channels=["u", "v"], roles=["velocity_x", "velocity_y"], periodic=True)
print(adapter.skipped_layers(model))   # {name: reason} for every Linear/conv that is not compressed
print(adapter.coverage(model))         # total / compressible parameters, fraction, smallest attainable ratio
result = compress(model, batches, ratio=0.5, adapter=adapter)
print(result.summary())
