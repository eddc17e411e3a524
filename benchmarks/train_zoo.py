"""Train a reference-zoo model through its framework adapter and write its weights and card.

    python benchmarks/train_zoo.py scot-ns [--steps N --batch B --lr LR --seed S]

Models are listed in ``safesvd_zoo.models.MODELS`` (``ns2d-transformer`` has its own entry point,
``train_reference.py``, which shares :func:`fit`). Deterministic for a given torch build: seeded
data and initialisation, one intra-op thread, seeded batch order. Writes
plugins/safesvd_zoo/weights/<name>.{safetensors,json}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

OUT = Path(__file__).resolve().parents[1] / "plugins" / "safesvd_zoo" / "weights"
#: Default (steps, batch, learning rate) per model.
TRAINING = {"scot-ns": (1000, 16, 2e-3), "avit-multiphysics": (3000, 16, 1e-3), "vit-timm": (4000, 32, 3e-3)}
OPTIMIZER = "AdamW(wd=1e-4) + OneCycle"


def training_arguments(description: str, *, steps: int, batch: int, lr: float) -> argparse.Namespace:
    """``--steps``, ``--batch``, ``--lr`` and ``--seed`` (default 0) from the command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def fit(
    model: nn.Module,
    loss: Callable[[Tensor], Tensor],
    samples: int,
    *,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
) -> float:
    """Train ``model`` on ``loss(indices)`` of random batches (AdamW + OneCycle);
    returns the seconds taken."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        value = loss(torch.randint(0, samples, (batch,), generator=generator))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        schedule.step()
        if step % 250 == 0:
            print(f"step {step:5d}  train loss {value.item():.5f}", flush=True)
    model.eval()
    return time.perf_counter() - start


def save(
    name: str,
    model: nn.Module,
    card: dict,
    *,
    training: dict,
    loss: str,
    test: float,
    copy: float,
    keys: tuple[str, str] = ("test_loss", "copy_input_test_loss"),
) -> None:
    """Write ``<name>.safetensors`` and ``<name>.json``: ``card`` (name, config, data), then the
    training settings (plus one thread, torch version, machine), parameters and the losses under ``keys``."""
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(OUT / f"{name}.safetensors"))
    card = {
        **card,
        "training": {
            **training,
            "threads": 1,
            "optimizer": OPTIMIZER,
            "torch": torch.__version__,
            "machine": platform.machine(),
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "loss": loss,
        keys[0]: test,
        keys[1]: copy,
        "copy_ratio": copy / test,
    }
    (OUT / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


def main() -> None:
    from safesvd_zoo import models

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=sorted(models.MODELS))
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    steps, batch, lr = (
        given if given is not None else default
        for given, default in zip((args.steps, args.batch, args.lr), TRAINING[args.name])
    )

    torch.set_num_threads(1)
    entry = models.spec(args.name)
    train = entry.split("train")
    torch.manual_seed(args.seed)
    model = entry.build()
    seconds = fit(
        model,
        lambda index: entry.loss(model, train, index),
        len(train),
        steps=steps,
        batch=batch,
        lr=lr,
        seed=args.seed,
    )
    test, copy = models.test_loss(args.name, model)
    save(
        args.name,
        model,
        {
            "name": args.name,
            "framework": entry.framework,
            "config": dict(entry.config),
            "data": {
                "grid": entry.grid,
                "channels": list(entry.channels),
                "families": [family.to_dict() for family in entry.families],
                "lead_times": list(entry.lead_times),
                "splits": {
                    k: {"samples_per_family_and_lead": entry.samples[k], "seed_offset": s}
                    for k, s in models.SEEDS.items()
                },
            },
        },
        training={"steps": steps, "batch": batch, "lr": lr, "seed": args.seed, "seconds": round(seconds, 1)},
        loss="relative MSE (safesvd_zoo.models.relative_mse)",
        test=test,
        copy=copy,
    )


if __name__ == "__main__":
    main()
