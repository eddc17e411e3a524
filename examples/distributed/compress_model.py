# examples/distributed/compress_model.py
import os

import torch
import torch.distributed as dist
from safesvd_core import Refinement, compress, save_compressed
from safesvd_zoo import reference

REFINE_STEPS = int(os.environ.get("REFINE_STEPS", 300))


def load_my_model():                # your model; the bundled reference model stands in for it here
    return reference.load()


calibration_items = reference.batches("calibration")      # the same calibration set in every process
fresh = reference.trajectory_batches(512, 2, seed=101, batch_size=32)   # 16 items: one per process a step
dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
if torch.cuda.is_available():
    torch.cuda.set_device(dist.get_rank() % torch.cuda.device_count())
model = load_my_model().to("cuda" if torch.cuda.is_available() else "cpu")
result = compress(model, calibration_items, ratio=0.4, family="ns-incompressible",
                  adapter_options={"field_description": reference.FIELD},
                  refine=Refinement(fresh, steps=REFINE_STEPS),     # gradients summed over the processes
                  checkpoint_dir="/shared/ckpt")            # distributed=None: the group is detected
if dist.get_rank() == 0:
    save_compressed(result, "compressed.safetensors")
dist.destroy_process_group()
