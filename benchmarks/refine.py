"""Refinement with data on the reference model: closed form against closed form + refine.

    python -m benchmarks.refine                  # every part (about an hour on 2 cores, 2 processes)
    python -m benchmarks.refine --parts table    # some parts; the page uses the saved rows of the others
    python -m benchmarks.refine --parts          # no measurement: render the page from the saved rows
    python -m benchmarks.refine --quick          # a few minutes: the script runs (scratch output)

Parts: ``table`` (safe-svd and svd-llm at 0.8/0.6/0.4/0.2, each closed form and + refine with the
same data and steps), ``data`` (refinement-data size at 0.4), ``steps`` (refinement steps at
0.4) and ``block`` (the training-free block-output correction, ``block_correction=True``, closed
form at every ratio). Every measurement runs in a process of its own (one thread, two at a time),
calibrates on the rollout benchmark's set (32 trajectories × 5 steps, seed 11) and is evaluated as
there: one step on the test split, horizons 1/3/5/8 on the 32 test trajectories. The refinement
inputs are trajectories from the Navier–Stokes generator with a seed no calibration or test set uses.

Writes docs/results/refine.md and raw/refine-<part>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from safesvd_cli.files import atomic_write
from safesvd_core import Refinement, compress, evaluate
from safesvd_zoo import reference

from .measure import FAMILY, ROLLOUT_CALIBRATION, ROLLOUT_HORIZONS, TEST_TRAJECTORIES
from .refine_report import page

#: The generator seed of the refinement inputs (calibration sets use 11–13, the test set 3, the splits 0–2).
REFINE_SEED = 101
RATIOS = (0.8, 0.6, 0.4, 0.2)
RECIPES = ("safe-svd", "svd-llm")
#: The default setting of the table: inputs, optimiser steps, rollout steps of the refinement items, lr.
SETTING = {"inputs": 4096, "steps": 2000, "rollout_steps": 2, "lr": 3e-4}
DATA_SIZES = (256, 1024, 2048, 4096, 8192)
STEP_COUNTS = (250, 500, 1000, 2000, 4000)
PARTS = ("table", "data", "steps", "block", "symmetries")
#: The small-data sizes refined with the family's symmetries (``symmetries`` part), against ``data``.
SYMMETRY_SIZES = (256, 1024)
BATCH = 32


def refine_items(inputs: int, steps: int, cache: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``inputs`` trajectories of ``steps`` steps from the generator (seed :data:`REFINE_SEED`), in
    batches of :data:`BATCH`; generated once per size and kept in ``cache``."""
    path = cache / f"refine-{inputs}-{steps}-{REFINE_SEED}.safetensors"
    if path.exists():
        tensors = load_file(str(path))
        start, trajectory = tensors["start"], tensors["trajectory"]
    else:
        start, trajectory = reference.trajectories(samples=inputs, steps=steps, seed=REFINE_SEED)
        cache.mkdir(parents=True, exist_ok=True)
        tensors = {"start": start.contiguous(), "trajectory": trajectory.contiguous()}
        atomic_write(path, lambda temporary: save_file(tensors, str(temporary)))
    return [(start[i : i + BATCH], trajectory[i : i + BATCH]) for i in range(0, inputs, BATCH)]


def _report(model: torch.nn.Module, compressed: torch.nn.Module) -> dict[str, Any]:
    test_rollout = reference.trajectory_batches(
        TEST_TRAJECTORIES, max(ROLLOUT_HORIZONS), seed=reference.TEST_TRAJECTORY_SEED
    )
    return evaluate(
        model,
        compressed,
        reference.batches("test", batch_size=32),
        family=FAMILY,
        adapter_options={"field_description": reference.FIELD},
        rollout=test_rollout,
        horizons=ROLLOUT_HORIZONS,
    ).to_dict()


def measure_refine(
    recipe: str,
    ratio: float,
    *,
    inputs: int,
    steps: int,
    rollout_steps: int,
    lr: float,
    cache: str,
    seed: int = reference.CALIBRATION_TRAJECTORY_SEEDS[0],
    recipe_options: dict[str, Any] | None = None,
    refine_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The closed form and the closed form + refine of ``recipe`` (with ``recipe_options``) at
    ``ratio``, both evaluated; the refinement's wall and CPU seconds (compression included in
    ``cpu_seconds``). ``steps=0``: the closed form only."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = reference.load()
    options = {
        "adapter_options": {
            "block_names": model.block_names(),
            "include": ["blocks.*"],
            "field_description": reference.FIELD,
        }
    }
    if recipe == "safe-svd":
        options["family"] = FAMILY
    options.update(recipe_options or {})
    calibration = reference.trajectory_batches(
        ROLLOUT_CALIBRATION["samples"], ROLLOUT_CALIBRATION["steps"], seed=seed
    )
    closed = compress(model, calibration, ratio=ratio, recipe=recipe, **options)
    row = {
        "model": reference.NAME,
        "recipe": recipe,
        "ratio": ratio,
        "seed": seed,
        "recipe_options": recipe_options or {},
        "closed": _report(model, closed.model),
        "compress_seconds": closed.timings["total"],
        "params_after": closed.params_after,
        "timings": dict(closed.timings),
    }
    if not steps:
        return row
    items = refine_items(inputs, rollout_steps, Path(cache))
    cpu, wall = time.process_time(), time.perf_counter()
    refined = compress(
        model,
        calibration,
        ratio=ratio,
        recipe=recipe,
        refine=Refinement(items, steps, lr=lr, **(refine_options or {})),
        **options,
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    refine = refined.reports["refine"]
    return {
        **row,
        "inputs": inputs,
        "steps": steps,
        "rollout_steps": rollout_steps,
        "lr": lr,
        "refine_options": refine_options or {},
        "refined": _report(model, refined.model),
        "refine_seconds": refined.timings["refine"],
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "refine": {
            key: refine[key]
            for key in (
                "kept",
                "best_step",
                "held_out_closed_form",
                "held_out_refined",
                "items",
                "history",
                "stopped",
            )
        },
    }


def jobs(part: str, quick: bool) -> list[dict[str, Any]]:
    """The measurements (keyword sets of :func:`measure_refine`) of one part."""
    setting = {**SETTING, "inputs": 256, "steps": 20} if quick else SETTING
    if part == "table":
        return [
            {"recipe": recipe, "ratio": ratio, **setting}
            for ratio in ((0.4,) if quick else RATIOS)
            for recipe in RECIPES
        ]
    if part == "data":
        return [
            {"recipe": "safe-svd", "ratio": 0.4, **setting, "inputs": inputs}
            for inputs in ((128,) if quick else DATA_SIZES)
        ]
    if part == "steps":
        return [
            {"recipe": "safe-svd", "ratio": 0.4, **setting, "steps": steps}
            for steps in ((10,) if quick else STEP_COUNTS)
        ]
    if part == "symmetries":  # little data multiplied by the family's symmetries
        return [
            {
                "recipe": "safe-svd",
                "ratio": 0.4,
                **setting,
                "inputs": inputs,
                "refine_options": {"symmetries": FAMILY},
            }
            for inputs in ((128,) if quick else SYMMETRY_SIZES)
        ]
    if part == "block":  # the training-free block-output correction, closed form only
        return [
            {
                "recipe": "safe-svd",
                "ratio": ratio,
                **setting,
                "steps": 0,
                "recipe_options": {"block_correction": True},
            }
            for ratio in ((0.4,) if quick else RATIOS)
        ]
    raise ValueError(f"unknown part {part!r}; parts: {', '.join(PARTS)}")


def _run(kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        return measure_refine(**kwargs)
    except Exception as error:  # noqa: BLE001 - a failing measurement is reported, not hidden
        return {**kwargs, "error": f"{type(error).__name__}: {error}"}


def run_all(measurements: list[dict[str, Any]], processes: int) -> list[dict[str, Any]]:
    """Every measurement in a fresh process (``maxtasksperchild=1``), ``processes`` at a time."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, maxtasksperchild=1) as pool:
        rows = []
        for row in pool.imap(_run, measurements):
            keys = ("recipe", "ratio", "inputs", "steps", "refine_seconds", "error")
            print(json.dumps({key: row.get(key) for key in keys if key in row}), flush=True)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny settings: the script runs (scratch output)"
    )
    parser.add_argument(
        "--parts", nargs="*", choices=PARTS, default=None, help="measure these parts (default: all)"
    )
    parser.add_argument("--processes", type=int, default=2, help="measurements at a time (one thread each)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path("/tmp/safesvd-refine-data"),
        help="where generated refinement inputs are kept between measurements",
    )
    args = parser.parse_args(argv)
    parts = PARTS if args.parts is None else tuple(args.parts)
    raw = args.out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for part in parts:
        measurements = [{**kwargs, "cache": str(args.cache)} for kwargs in jobs(part, args.quick)]
        for inputs, steps in sorted({(m["inputs"], m["rollout_steps"]) for m in measurements if m["steps"]}):
            refine_items(inputs, steps, args.cache)  # generated once, before the measurements share it
        rows = run_all(measurements, args.processes)
        (raw / f"refine-{part}.json").write_text(json.dumps(rows, indent=1) + "\n")
    saved = {
        part: json.loads(path.read_text()) for part in PARTS if (path := raw / f"refine-{part}.json").exists()
    }
    rollout_path = raw / "rollout.json"
    rollout_rows = json.loads(rollout_path.read_text()) if rollout_path.exists() else []
    command = "python -m benchmarks.refine" + (" --quick" if args.quick else "")
    table = saved.get("table") or [{**SETTING}]
    setting = {key: table[0][key] for key in SETTING}  # as measured (--quick: its tiny setting)
    (args.out / "refine.md").write_text(page(saved, rollout_rows, command, setting))
    print(f"wrote {args.out / 'refine.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
