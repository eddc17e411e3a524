"""Train the zoo's Fourier neural operator (``fno-ns``) and write its weights and card.

    python -m benchmarks.train_fno [--steps N --batch B --lr LR --seed S]

The FNO of :mod:`safesvd_zoo.fourier` learns one ``LEAD_TIME`` step of 2-D incompressible NS from
the consecutive frames of its training trajectories, with the relative L2 loss (AdamW + OneCycle,
:func:`benchmarks.train_zoo.fit`; one thread, seeded). The card records the test split's one-step
relative L1 error and that of copying the input. Writes plugins/safesvd_zoo/weights/fno-ns.*.
"""

from __future__ import annotations

import json
import platform

import torch
from safetensors.torch import save_file
from torch import Tensor

from benchmarks.train_zoo import OPTIMIZER, OUT, fit, training_arguments
from safesvd_adapters.base_losses import relative_l1, relative_l2


def main() -> None:
    from safesvd_zoo import fourier

    args = training_arguments(__doc__, steps=2000, batch=16, lr=3e-3)
    torch.set_num_threads(1)
    inputs, targets = fourier.pairs("train", fourier.TRAIN_STEPS)
    torch.manual_seed(args.seed)
    model = fourier.build()
    seconds = fit(
        model,
        lambda index: relative_l2(model(inputs[index]), targets[index]),
        len(inputs),
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
    )
    test_inputs, test_targets = fourier.pairs("test")
    with torch.no_grad():
        test = float(relative_l1(model(test_inputs), test_targets))
    copy = float(relative_l1(test_inputs, test_targets))
    OUT.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if isinstance(v, Tensor)}
    save_file(state, str(OUT / f"{fourier.NAME}.safetensors"))
    card = {
        "name": fourier.NAME,
        "framework": "neuraloperator",
        "config": fourier.CONFIG,
        "data": {
            "generator": "navier_stokes (safesvd_data.navier_stokes.NavierStokes2D)",
            "grid": fourier.GRID,
            "lead_time": fourier.LEAD_TIME,
            "splits": {name: {"trajectories": n, "seed": s} for name, (n, s) in fourier.SPLITS.items()},
            "train_steps_per_trajectory": fourier.TRAIN_STEPS,
        },
        "training": {
            "steps": args.steps,
            "batch": args.batch,
            "lr": args.lr,
            "seed": args.seed,
            "seconds": round(seconds, 1),
            "threads": 1,
            "optimizer": OPTIMIZER,
            "loss": "relative L2",
            "torch": torch.__version__,
            "machine": platform.machine(),
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "fourier_parameters": sum(
            p.numel() for name, p in model.named_parameters() if "convs" in name and p.is_complex()
        ),
        "test_relative_l1": test,
        "copy_input_test_relative_l1": copy,
    }
    (OUT / f"{fourier.NAME}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
