# examples/baselines/recipes.py
from safesvd_core import available, compress
from safesvd_zoo import reference

model, calibration = reference.load(), reference.batches("calibration")
print(available("recipe"))  # asvd, dobi-svd, fwsvd, saes-svd, safe-svd, safe-svd-balanced, svd, svd-llm, svd-llm-v2
result = compress(model, calibration, ratio=0.4, recipe="svd-llm", allocator="greedy")
print(result.params_after, result.met_budget, result.notes)
