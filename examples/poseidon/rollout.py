# examples/poseidon/rollout.py
"""Roll both models out along Poseidon's test trajectories with Poseidon's time convention: an item's
time is the lead time of the whole rollout, and each of its K steps is fed time / K."""

import torch
from scOT.model import ScOT
from scOT.problems.base import get_dataset

from safesvd_core import evaluate, load_compressed

CHECKPOINT, STEPS = "Poseidon-T", 7
FIELDS = {"channels": ["rho", "u", "v", "p"], "roles": ["density", "velocity_x", "velocity_y", "pressure"],
          "periodic": True, "rollout_time": "total"}   # "step" (default): time is each step's lead time

# Inputs at time step 0, labels at steps 2, 4, ..., 14: item i * STEPS + k is trajectory i's state k + 1.
test = get_dataset("fluids.incompressible.Sines", which="test", num_trajectories=1, data_path="data",
                   fix_input_to_time_step=0, time_step_size=2, max_num_time_steps=STEPS)


def trajectories(first: int, count: int) -> dict:
    """Trajectories first, ..., first + count - 1 as one rollout item: labels (count, K, C, H, W) and
    time the lead time of the whole rollout (Poseidon's: 14 / 20 here)."""
    states = [[test[i * STEPS + k] for k in range(STEPS)] for i in range(first, first + count)]
    return {"pixel_values": torch.stack([s[0]["pixel_values"] for s in states]),
            "labels": torch.stack([torch.stack([step["labels"] for step in s]) for s in states]),
            "time": torch.tensor([s[-1]["time"] for s in states], dtype=torch.float64),
            "pixel_mask": torch.stack([s[0]["pixel_mask"] for s in states])}


rollouts = [trajectories(first, 4) for first in (0, 4)]
# their first steps as one-step batches: one step's lead time (14 / 20 / 7), the first labels
one_step = [{**item, "labels": item["labels"][:, 0], "time": item["time"] / STEPS} for item in rollouts]
original = ScOT.from_pretrained(CHECKPOINT).eval()
compressed = load_compressed(ScOT.from_pretrained(CHECKPOINT).eval(), "poseidon-t-0.4")
report = evaluate(original, compressed, one_step, adapter="transformers", adapter_options=FIELDS,
                  family="ns-incompressible", rollout=rollouts, horizons=(1, 3, STEPS))
print(report.to_markdown())   # the signed change of every metric, one step ahead and at horizons 1, 3, 7
