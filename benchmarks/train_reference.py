"""Train the bundled reference PFM (2-D NS FieldTransformer) and write its weights and card.

    python benchmarks/train_reference.py [--steps 3000]

Deterministic for a given torch build (seeded data and initialisation, seeded order of batches);
the training loop is :func:`train_zoo.fit`. Writes
plugins/safesvd_zoo/weights/ns2d-transformer.{safetensors,json}.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from safesvd_zoo import reference
from safesvd_zoo.operator import FieldTransformer, OperatorConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_zoo import fit, save, training_arguments


def main() -> None:
    args = training_arguments(__doc__, steps=3000, batch=32, lr=3e-3)

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    config = OperatorConfig(width=64, depth=4, heads=4, patch=4, size=reference.GRID)
    model = FieldTransformer(config)
    inputs, targets = reference.split("train")
    seconds = fit(
        model,
        lambda index: torch.mean((model(inputs[index]) - targets[index]) ** 2),
        len(inputs),
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
    )
    test_inputs, test_targets = reference.split("test")
    copy_loss = float(torch.mean((test_inputs - test_targets) ** 2))
    test_loss = reference.test_loss(model)
    save(
        reference.NAME,
        model,
        {
            "name": reference.NAME,
            "config": config.to_dict(),
            "data": {
                "equation": "2-D incompressible Navier-Stokes (vorticity form), periodic [0, 2pi)^2",
                "viscosity": 1e-3,
                "lead_time": reference.LEAD_TIME,
                "grid": reference.GRID,
                "splits": {k: {"samples": n, "seed": s} for k, (n, s) in reference.SPLITS.items()},
            },
        },
        training={
            "steps": args.steps,
            "batch": args.batch,
            "lr": args.lr,
            "seed": args.seed,
            "seconds": round(seconds, 1),
        },
        loss="MSE",
        test=test_loss,
        copy=copy_loss,
        keys=("test_mse", "copy_input_test_mse"),
    )


if __name__ == "__main__":
    main()
