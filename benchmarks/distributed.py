"""Distributed calibration on this machine: one process against two (gloo, loopback), same job.

    python -m benchmarks.distributed            # writes docs/results/distributed.md
    python -m benchmarks.distributed --quick    # fewer items: checks the script

The reference model (`ns2d-transformer`) with `safe-svd` at ratio 0.4 on 1024 one-step pairs, in
`block` stages (whose solves are split across the processes) and in the default `layer` stages,
each process with one thread. Reported: wall seconds by phase from `result.timings` (process 0),
the speed-up, and the largest relative difference of the factors against the one-process run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from safesvd_core.testing.loopback import run_on_loopback

from .report import header

RATIO = 0.4
PHASES = ("probe", "lambda", "clean", "allocate", "stages", "total")


def _job(samples: int, stage_mode: str) -> dict[str, Any]:
    from safesvd_core import LowRankLinear, compress
    from safesvd_zoo import reference

    torch.set_num_threads(1)
    model = reference.load()
    inputs, targets = reference.velocity_pairs(
        samples, size=reference.GRID, lead_time=reference.LEAD_TIME, seed=41
    )
    items = [(inputs[i : i + 16], targets[i : i + 16]) for i in range(0, samples, 16)]
    options = {
        "block_names": model.block_names(),
        "include": ["blocks.*"],
        "field_description": reference.FIELD,
    }
    start = time.perf_counter()
    result = compress(
        model, items, ratio=RATIO, family="ns-incompressible", stage_mode=stage_mode, adapter_options=options
    )
    wall = time.perf_counter() - start
    factors = {
        name: module.weight.detach()
        for name, module in result.model.named_modules()
        if isinstance(module, LowRankLinear)
    }
    test = reference.batches("test", batch_size=64)[0][0]
    with torch.no_grad():
        factors["outputs"] = result.model(test)
    return {"wall": wall, "timings": dict(result.timings), "factors": factors}


def _worker(rank: int, world: int, samples: int, stage_mode: str, out: str) -> None:
    row = _job(samples, stage_mode)
    if rank == 0:
        save_file(
            {k: v.contiguous() for k, v in row["factors"].items()}, str(Path(out) / "factors.safetensors")
        )
        (Path(out) / "row.json").write_text(json.dumps({"wall": row["wall"], "timings": row["timings"]}))


def measure(samples: int, stage_mode: str) -> dict[str, Any]:
    alone = _job(samples, stage_mode)
    with tempfile.TemporaryDirectory() as out:
        run_on_loopback(_worker, 2, samples, stage_mode, out)
        two = json.loads((Path(out) / "row.json").read_text())
        factors = load_file(str(Path(out) / "factors.safetensors"))
    relative = {
        k: float(torch.linalg.vector_norm(factors[k] - v) / torch.linalg.vector_norm(v))
        for k, v in alone["factors"].items()
    }
    return {
        "stage_mode": stage_mode,
        "samples": samples,
        "one": {"wall": alone["wall"], "timings": alone["timings"]},
        "two": two,
        "outputs": relative.pop("outputs"),
        "difference": max(relative.values()),
    }


def page(rows: list[dict[str, Any]], command: str) -> str:
    lines = [
        header(
            "Distributed calibration: one process against two (gloo)",
            command,
            "one thread per process; 2 cores",
        )
    ]
    lines.append(
        f"`ns2d-transformer`, `safe-svd` at ratio {RATIO} with the NS family, one-step pairs; seconds by "
        "phase (process 0's `result.timings`), speed-up = one process / two.\n"
    )
    lines.append(
        "The model is float32: the statistics agree to rounding, but the factors of one stage feed the next "
        "stage's statistics in float32, and a solve amplifies a difference in a near-singular input "
        "direction by up to 1/jitter, so the factors differ by more than the float64 test's 1e-10; the "
        "outputs on 64 test samples show what that difference does.\n"
    )
    lines.append(
        "| stages | items | processes | "
        + " | ".join(PHASES)
        + " | largest factor difference | output difference |"
    )
    lines.append("|---|---|---|" + "---|" * len(PHASES) + "---|---|")
    for row in rows:
        for label, key in (("1", "one"), ("2", "two")):
            cells = " | ".join(f"{row[key]['timings'].get(p, 0.0):.2f}" for p in PHASES)
            note = "— | —" if key == "one" else f"{row['difference']:.1e} | {row['outputs']:.1e}"
            lines.append(f"| {row['stage_mode']} | {row['samples']} | {label} | {cells} | {note} |")
        speed = " | ".join(
            f"{row['one']['timings'].get(p, 0.0) / max(row['two']['timings'].get(p, 0.0), 1e-9):.2f}×"
            for p in PHASES
        )
        lines.append(f"| {row['stage_mode']} | {row['samples']} | speed-up | {speed} | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results")
    args = parser.parse_args(argv)
    samples = 32 if args.quick else 1024
    rows = [measure(samples, mode) for mode in ("block", "layer")]
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.distributed" + (" --quick" if args.quick else "")
    (args.out / "distributed.md").write_text(page(rows, command))
    print(page(rows, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
