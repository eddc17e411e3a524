# examples/fine_tune/refine_later.py
"""Refine a model compressed earlier (a folder that save_compressed or `safesvd compress` wrote) on
fresh data, into a new folder whose manifest records the refinement."""

import os

from safesvd_core import compress, load_compressed, refine, save_compressed, save_refined
from safesvd_zoo import reference

INPUTS, STEPS = int(os.environ.get("INPUTS", 1024)), int(os.environ.get("STEPS", 500))

model = reference.load()
options = {"block_names": model.block_names(), "include": ["blocks.*"], "field_description": reference.FIELD}
result = compress(model, reference.trajectory_batches(32, 5), ratio=0.4, family="ns-incompressible",
                  adapter_options=options)
save_compressed(result, "compressed-0.4")                            # yesterday, or on another machine

compressed = load_compressed(reference.load(), "compressed-0.4")     # the original architecture, then the file
fresh = reference.trajectory_batches(INPUTS, 2, seed=101, batch_size=32)
refined = refine(compressed, reference.load(), fresh, steps=STEPS, adapter_options=options, lr=3e-4)
save_refined(refined, "refined-later-0.4", source="compressed-0.4")  # never over the source folder
print(refined.record["kept"], refined.record["best_step"], refined.record["held_out_refined"])
