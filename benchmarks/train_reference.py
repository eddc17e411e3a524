"""Train the bundled reference PFM (2-D NS FieldTransformer) and write its weights and card.

    python benchmarks/train_reference.py [--steps 1500]

Deterministic for a given torch build (seeded data and initialisation, single-threaded order
of batches). Writes plugins/safesvd_zoo/weights/ns2d-transformer.{safetensors,json}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from safesvd_zoo import reference
from safesvd_zoo.operator import FieldTransformer, OperatorConfig

OUT = Path(__file__).resolve().parents[1] / "plugins" / "safesvd_zoo" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    config = OperatorConfig(width=64, depth=4, heads=4, patch=4, size=reference.GRID)
    model = FieldTransformer(config)
    inputs, targets = reference.split("train")
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for step in range(args.steps):
        index = torch.randint(0, len(inputs), (args.batch,), generator=generator)
        loss = torch.mean((model(inputs[index]) - targets[index]) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 250 == 0:
            print(f"step {step:5d}  train mse {loss.item():.5f}", flush=True)
    seconds = time.perf_counter() - start
    model.eval()
    test_inputs, test_targets = reference.split("test")
    copy_loss = float(torch.mean((test_inputs - test_targets) ** 2))
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(OUT / f"{reference.NAME}.safetensors"))
    card = {
        "name": reference.NAME,
        "config": config.to_dict(),
        "data": {"equation": "2-D incompressible Navier-Stokes (vorticity form), periodic [0, 2pi)^2",
                 "viscosity": 1e-3, "lead_time": reference.LEAD_TIME, "grid": reference.GRID,
                 "splits": {k: {"samples": n, "seed": s} for k, (n, s) in reference.SPLITS.items()}},
        "training": {"steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
                     "optimizer": "AdamW(wd=1e-4) + OneCycle", "seconds": round(seconds, 1),
                     "torch": torch.__version__, "machine": platform.machine()},
        "parameters": sum(p.numel() for p in model.parameters()),
        "test_mse": reference.test_loss(model),
        "copy_input_test_mse": copy_loss,
    }
    (OUT / f"{reference.NAME}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
