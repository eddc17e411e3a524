"""The models ``benchmarks.refine_scale`` refines, and the plain PyTorch distillation loop it times
safesvd's refinement against.

- ``reference``: the reference model (``ns2d-transformer``), safe-svd at 0.4 on 32 trajectories,
  refined on 2-step trajectory items of 32 inputs (the one-step and the K-step term).
- ``poseidon-t``: the ScOT stand-in at Poseidon-T's shapes (128², about 21M parameters, random
  weights), svd-llm at 0.4 on 4 compressible-Euler pairs (the recipe is beside the point: refinement
  time), refined on one-step items of 2 pairs.

The plain loop is what a user would write: Adam with the same warm-up and cosine schedule, the
teacher's predictions cached per item, the student rolled out on its own predictions, the loss the
relative distance at each horizon (the one-step term and the K-step mean, half each).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor, nn

RATIO = 0.4
#: The refinement's options where the loop and ``refine`` must agree.
LR, WARMUP, ROLLOUT_WEIGHT = 3e-4, 5, 0.5


@attrs.frozen
class Subject:
    """One model to refine: how to build it, compress it, make items and run an item by hand."""

    name: str
    build: Callable[[], nn.Module]
    compress_into: Callable[[nn.Module, str], None]
    items: Callable[[int], list[Any]]
    refine_options: Callable[[nn.Module], dict[str, Any]]
    run: Callable[[nn.Module, Any], list[Tensor]]
    describe: str


def _reference() -> nn.Module:
    from safesvd_zoo import reference

    return reference.load()


def _reference_options(model: nn.Module) -> dict[str, Any]:
    return {"adapter_options": {"block_names": model.block_names(), "include": ["blocks.*"]}}


def _reference_compress(model: nn.Module, folder: str) -> None:
    from safesvd_core import compress, save_compressed
    from safesvd_zoo import reference

    options = _reference_options(model)["adapter_options"]
    result = compress(
        model,
        reference.trajectory_batches(32, 5),
        ratio=RATIO,
        family="ns-incompressible",
        adapter_options={**options, "field_description": reference.FIELD},
    )
    save_compressed(result, folder)


def _reference_items(count: int) -> list[Any]:
    from safesvd_zoo import reference

    return reference.trajectory_batches(count * 32, 2, seed=101, batch_size=32)


def _reference_run(model: nn.Module, item: Any) -> list[Tensor]:
    state, trajectory = item
    predictions = []
    for _ in range(trajectory.shape[1]):
        state = model(state)
        predictions.append(state)
    return predictions


def _poseidon() -> nn.Module:
    from safesvd_adapters.scot_like import scot_like

    from .scale import CHANNELS, EULER_GROUPS, SHAPES

    torch.manual_seed(0)
    channels = len(CHANNELS["channels"])
    return scot_like(
        **SHAPES["poseidon-t"],
        num_channels=channels,
        num_out_channels=channels,
        channel_slice_list_normalized_loss=EULER_GROUPS,
    )


def poseidon_adapter() -> Any:
    from safesvd_adapters.hf import TransformersAdapter

    from .scale import CHANNELS

    return TransformersAdapter(**CHANNELS)


def _poseidon_options(model: nn.Module) -> dict[str, Any]:
    return {"adapter": poseidon_adapter()}


def _poseidon_compress(model: nn.Module, folder: str) -> None:
    from safesvd_core import compress, save_compressed

    from .scale import calibration_batches

    batches = calibration_batches(4, 2, seed=1, size=model.config.image_size)
    save_compressed(
        compress(model, batches, ratio=RATIO, recipe="svd-llm", adapter=poseidon_adapter()), folder
    )


def _poseidon_items(count: int) -> list[Any]:
    from .scale import calibration_batches

    return calibration_batches(2 * count, 2, seed=7, size=128)


def _poseidon_run(model: nn.Module, batch: Any) -> list[Tensor]:
    return [model(pixel_values=batch["pixel_values"], time=batch["time"]).output]


SUBJECTS = {
    "reference": Subject(
        "reference",
        _reference,
        _reference_compress,
        _reference_items,
        _reference_options,
        _reference_run,
        "the reference model at 0.4 (safe-svd), 2-step trajectory items of 32 inputs",
    ),
    "poseidon-t": Subject(
        "poseidon-t",
        _poseidon,
        _poseidon_compress,
        _poseidon_items,
        _poseidon_options,
        _poseidon_run,
        "the ScOT stand-in at Poseidon-T's shapes (128², random weights) at 0.4 (svd-llm), one-step items "
        "of 2 compressible-Euler pairs",
    ),
}


def load_compressed_subject(subject: Subject, folder: str) -> tuple[nn.Module, nn.Module]:
    """``(original, compressed)``: the subject built afresh and its compressed model from ``folder``."""
    from safesvd_core import load_compressed

    return subject.build(), load_compressed(subject.build(), folder)


def refined_subject(subject: Subject, folder: str, items: list[Any], steps: int, **extra: Any) -> Any:
    """safesvd's ``refine`` of the subject's compressed model on ``items`` for ``steps`` steps, no held-out
    split (the last state kept); the ``RefinedModel``."""
    from safesvd_core import refine

    original, compressed = load_compressed_subject(subject, folder)
    refined = refine(
        compressed,
        original,
        items,
        steps=steps,
        lr=LR,
        warmup=WARMUP,
        rollout_weight=ROLLOUT_WEIGHT,
        held_out=0.0,
        eval_every=steps,
        **subject.refine_options(original),
        **extra,
    )
    return refined


def plain_seconds(subject: Subject, folder: str, items: list[Any], steps: int) -> float:
    """The plain loop (the module's) on the same compressed model and items: its seconds."""
    teacher, student = load_compressed_subject(subject, folder)
    # the modes as loaded, as ``refine`` takes them
    parameters = [p for p in student.parameters() if p.is_floating_point() and p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=LR)
    cached: dict[int, list[Tensor]] = {}
    start = time.perf_counter()
    for step in range(steps):
        progress = min(1.0, (step - WARMUP) / max(1, steps - WARMUP))
        rate = LR * (step + 1) / WARMUP if step < WARMUP else LR * 0.5 * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = rate
        index = step % len(items)
        if index not in cached:
            with torch.no_grad():
                cached[index] = subject.run(teacher, items[index])
        terms = [
            torch.mean((prediction - target) ** 2) / torch.mean(target**2)
            for prediction, target in zip(subject.run(student, items[index]), cached[index])
        ]
        loss = (
            terms[0]
            if len(terms) == 1
            else (1 - ROLLOUT_WEIGHT) * terms[0] + ROLLOUT_WEIGHT * sum(terms) / len(terms)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def compressed_folder(subject: Subject, work: str) -> str:
    """The subject compressed once into ``work``."""
    folder = str(Path(work) / f"compressed-{subject.name}")
    subject.compress_into(subject.build(), folder)
    return folder
