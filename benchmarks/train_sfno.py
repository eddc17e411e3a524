"""Train the zoo's spherical Fourier neural operator (``sfno-swe``) and write its weights and card.

    python -m benchmarks.train_sfno [--steps N --batch B --lr LR --seed S]

The SFNO of :mod:`safesvd_zoo.spherical` learns one ``LEAD_HOURS`` step of the shallow-water
equations on the sphere from windows of its training trajectories: the relative L2 loss of
``--unroll`` autoregressive steps (the model fed its own predictions, so that its rollouts stay
stable; trained one step at a time, its 8-step rollouts diverged), AdamW + OneCycle
(:func:`benchmarks.train_zoo.fit`; one thread, seeded). The card
records the test split's one-step relative L1 error and that of copying the input. Needs
torch-harmonics; writes plugins/safesvd_zoo/weights/sfno-swe.*.
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmarks.train_zoo import fit, save, training_arguments
from safesvd_adapters.base_losses import relative_l1, relative_l2

#: Autoregressive steps per training window.
UNROLL = 2


def main() -> None:
    from safesvd_zoo import spherical

    args = training_arguments(__doc__, steps=3000, batch=8, lr=3e-3)
    torch.set_num_threads(1)
    start, frames = spherical.trajectories("train", spherical.TRAIN_STEPS)
    states = torch.cat([start[:, None], frames], dim=1)  # (N, steps + 1, 3, *grid)
    windows = states.unfold(1, UNROLL + 1, 1).movedim(-1, 2).flatten(0, 1)  # (N', UNROLL + 1, 3, *grid)
    torch.manual_seed(args.seed)
    model = spherical.build()

    def unrolled(index: Tensor) -> Tensor:
        window, state, loss = windows[index], windows[index, 0], 0.0
        for step in range(1, UNROLL + 1):
            state = model(state)
            loss = loss + relative_l2(state, window[:, step])
        return loss / UNROLL

    seconds = fit(
        model,
        unrolled,
        len(windows),
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
    )
    test_inputs, test_targets = spherical.pairs("test")
    with torch.no_grad():
        test = float(relative_l1(model(test_inputs), test_targets))
    copy = float(relative_l1(test_inputs, test_targets))
    card = {
        "name": spherical.NAME,
        "framework": "torch-harmonics",
        "config": spherical.CONFIG,
        "data": {
            "generator": "torch_harmonics.examples.ShallowWaterSolver (random initial conditions, Mach 0.2)",
            "grid": list(spherical.GRID),
            "channels": list(spherical.CHANNELS),
            "lead_hours": spherical.LEAD_HOURS,
            "spin_up_hours": spherical.SPIN_UP_HOURS,
            "splits": {name: {"trajectories": n, "seed": s} for name, (n, s) in spherical.SPLITS.items()},
            "train_steps_per_trajectory": spherical.TRAIN_STEPS,
        },
        "spectral_parameters": sum(p.numel() for p in model.parameters() if p.is_complex()),
    }
    training = {"steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed, "unroll": UNROLL}
    save(
        spherical.NAME,
        model,
        card,
        training={**training, "seconds": round(seconds, 1)},
        loss=f"relative L2 over {UNROLL} unrolled steps",
        test=test,
        copy=copy,
        keys=("test_relative_l1", "copy_input_test_relative_l1"),
    )


if __name__ == "__main__":
    main()
