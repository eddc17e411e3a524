"""What rollout calibration costs: one `compress` of the reference model on K-step trajectories
against one on one-step pairs, each timed once, in one process with one thread.

    OMP_NUM_THREADS=1 python -m benchmarks.rollout_cost            # 32 trajectories × 5 steps, ratio 0.4

Three calibrations of `safe-svd` (family ns-incompressible) from the same 32 trajectories: the
rollouts themselves (the default for trajectory items), their first steps only (32 one-step
pairs: the same starts) and every step teacher-forced (`rollout=False`: 5 × 32 one-step pairs,
as many model calls as the rollouts), after one untimed warm-up compress. Prints the wall
seconds, the passes and the ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch

from safesvd_core import compress
from safesvd_zoo import reference


def _timed(
    model: torch.nn.Module, items: list[Any], ratio: float, **options: Any
) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    result = compress(
        model,
        items,
        ratio=ratio,
        family="ns-incompressible",
        adapter_options={
            "block_names": model.block_names(),
            "include": ["blocks.*"],
            "field_description": reference.FIELD,
        },
        **options,
    )
    return time.perf_counter() - start, {"passes": dict(result.passes), "timings": dict(result.timings)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--ratio", type=float, default=0.4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = reference.load()
    trajectories = reference.trajectory_batches(
        args.samples, args.steps, seed=reference.CALIBRATION_TRAJECTORY_SEEDS[0]
    )
    first_steps = [(start, trajectory[:, 0]) for start, trajectory in trajectories]
    _timed(
        model, first_steps[:1], args.ratio
    )  # warm-up, not shown: the first compress of a process pays its set-up
    runs = {
        f"{args.samples} rollouts of {args.steps} steps": _timed(model, trajectories, args.ratio),
        f"{args.samples} one-step pairs (the same starts)": _timed(model, first_steps, args.ratio),
        f"{args.samples * args.steps} one-step pairs (every step, teacher-forced)": _timed(
            model, trajectories, args.ratio, rollout=False
        ),
    }
    base = next(iter(runs.values()))[0]
    print(
        "| calibration | compress (s) | rollouts ÷ this | seconds by phase | passes |\n|---|---|---|---|---|"
    )
    for label, (seconds, counts) in runs.items():
        phases = ", ".join(f"{k} {v:.2f}" for k, v in counts["timings"].items())
        passes = ", ".join(f"{k} {v}" for k, v in counts["passes"].items())
        print(f"| {label} | {seconds:.1f} | {base / seconds:.1f} | {phases} | {passes} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
