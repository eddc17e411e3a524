# examples/readme/api.py
import safesvd_core as safesvd
from safesvd_zoo import reference

model, calibration_batches = reference.load(), reference.batches("calibration")   # the bundled reference PFM
result = safesvd.compress(model, calibration_batches, ratio=0.5)   # keep ≤ 50 % of the parameters
result.model            # the compressed model (the original is untouched unless inplace=True)
result.ranks            # layer → kept rank, None where the layer stays dense
result.params_before, result.params_after, result.fallbacks, result.timings, result.passes
print(result.summary())
