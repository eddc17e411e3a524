# examples/recipes/recipes.py
"""The same model and data through several recipes and options; one signed change each."""

from safesvd_core import compress, evaluate
from safesvd_zoo import reference

model = reference.load()
calibration, test = reference.batches("calibration"), reference.batches("test")
options = {"field_description": reference.FIELD, "include": ["blocks.*"], "block_names": reference.block_names(model)}
runs = {
    "safe-svd": {},
    "safe-svd, family, α 0.7": {"family": "ns-incompressible", "alpha": 0.7},
    "safe-svd, uniform ranks": {"allocator": "uniform"},
    "safe-svd, no Fisher, not sequential": {"sensitivity": False, "sequential": False},
    "svd-llm": {"recipe": "svd-llm"},
    "asvd": {"recipe": "asvd", "scaling_exponent": 0.5},
    "svd": {"recipe": "svd"},
}
for label, recipe_options in runs.items():
    result = compress(model, calibration, ratio=0.6, adapter_options=options, **recipe_options)
    change = evaluate(model, result.model, test, adapter_options=options).metric("base loss").signed_change_percent
    print(f"{label:40s} {result.params_after:>7,} parameters   test MSE {change:+.2f} %")
