# examples/fine_tune/fine_tune.py
"""Fine-tune the compressed reference model on a changed task (lead time 2 instead of 1), next to
the original, with plain PyTorch; print both test errors along the way and draw the curves."""

import copy
import os

import torch

from safesvd_core import compress, load_compressed, save_compressed
from safesvd_data.navier_stokes import velocity_pairs
from safesvd_zoo import reference

STEPS, EVERY = int(os.environ.get("STEPS", 1500)), int(os.environ.get("EVERY", 100))
torch.manual_seed(0)

original = reference.load()
options = {"block_names": original.block_names(), "include": ["blocks.*"], "field_description": reference.FIELD}
result = compress(original, reference.trajectory_batches(32, 5), ratio=0.4, family="ns-incompressible",
                  adapter_options=options)
save_compressed(result, "compressed-0.4")                         # as a user would have it: a folder
compressed = load_compressed(reference.load(), "compressed-0.4")   # balanced factors: ready to train

# The new task: the flow 2 time units ahead (the models were trained for 1). Fresh seeds.
train_x, train_y = velocity_pairs(1024, lead_time=2.0, seed=200)
test_x, test_y = velocity_pairs(256, lead_time=2.0, seed=201)


def test_error(model: torch.nn.Module) -> float:
    with torch.no_grad():
        return float(torch.mean((model(test_x) - test_y) ** 2))


def fine_tune(model: torch.nn.Module) -> list[tuple[int, float]]:
    """Adam, lr 3e-4 with cosine decay, batches of 32; the test MSE every EVERY steps."""
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, STEPS)
    generator = torch.Generator().manual_seed(0)
    curve = [(0, test_error(model))]
    for step in range(1, STEPS + 1):
        index = torch.randint(0, len(train_x), (32,), generator=generator)
        loss = torch.mean((model(train_x[index]) - train_y[index]) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % EVERY == 0:
            curve.append((step, test_error(model)))
    return curve


curves = {"original": fine_tune(original), "compressed (0.4)": fine_tune(compressed)}
for step, (_, a), (_, b) in zip([s for s, _ in curves["original"]], *curves.values()):
    print(f"step {step:5d}   original {a:.5f}   compressed {b:.5f}")
# when the compressed model first reaches each of the original's errors
compressed_curve, reached = curves["compressed (0.4)"], []
for step, target in curves["original"][1:]:
    first = next((s for s, error in compressed_curve if error <= target), None)
    if first is None:
        break
    reached.append(f"the original's error of step {step} at step {first}")
final, own = curves["original"][-1][1], compressed_curve[-1][1]
print("the compressed model reaches " + ("; ".join(reached) or "none of the original's errors")
      + (f"; the original's final {final:.5f} not within {STEPS} steps (its own final {own:.5f}, "
         f"{100 * (own - final) / final:+.1f} %)" if own > final else f"; the original's final {final:.5f} too"))

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
if plt is not None:
    figure, axes = plt.subplots(figsize=(5, 3.2))
    for label, curve in curves.items():
        axes.plot(*zip(*curve), marker="o", label=label)
    axes.set(xlabel="fine-tuning step", ylabel="test MSE (lead time 2)", yscale="log")
    axes.legend()
    figure.tight_layout()
    figure.savefig("fine-tune.png", dpi=120)
