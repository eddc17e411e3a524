# examples/fine_tune/refine.py
"""Compress the reference model to 40 % of its parameters, then refine it with fresh data: the
original model is the teacher, the inputs are trajectories the calibration never saw."""

import os

from safesvd_core import Refinement, compress, save_compressed
from safesvd_zoo import reference

INPUTS, STEPS = int(os.environ.get("INPUTS", 4096)), int(os.environ.get("STEPS", 2000))

model = reference.load()
options = {"block_names": model.block_names(), "include": ["blocks.*"], "field_description": reference.FIELD}
calibration = reference.trajectory_batches(32, 5)                     # 32 trajectories of 5 steps (seed 11)
fresh = reference.trajectory_batches(INPUTS, 2, seed=101, batch_size=32)   # 2-step trajectories, another seed

result = compress(model, calibration, ratio=0.4, family="ns-incompressible", adapter_options=options,
                  refine=Refinement(fresh, steps=STEPS, lr=3e-4), progress=True)
report = result.reports["refine"]
print(result.notes[-1])
print(f"kept: {report['kept']} (step {report['best_step']}), {report['seconds']:.0f} s")
save_compressed(result, "refined-0.4")                               # the report is in its manifest
