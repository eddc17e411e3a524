"""Calibration size: how fidelity, one step and over rollouts, depends on the number of calibration
trajectories.

    python -m benchmarks.calibration_size            # writes docs/results/calibration-size.md
    python -m benchmarks.calibration_size --quick    # one size, one set: checks the script

On the reference model, `safe-svd` calibrated on rollouts (its default for trajectories), `safe-svd`
on the same trajectories' one-step batches (`rollout=False`) and `svd-llm` (one-step batches), at
ratios 0.6 and 0.4, with 32, 64, 128 and 256 trajectories of 5 steps, averaged over two
calibration sets per size. Each measurement runs in a fresh process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from .measure import measure_rollout
from .report import header
from .rollout_report import change, horizons
from .run import RECIPE_OPTIONS, run_isolated

SIZES = (32, 64, 128, 256)
RATIOS = (0.6, 0.4)
SEEDS = (21, 22)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "safe-svd (rollout)": ("safe-svd", RECIPE_OPTIONS["safe-svd"]),
    "safe-svd (one-step batches)": ("safe-svd", {**RECIPE_OPTIONS["safe-svd"], "rollout": False}),
    "svd-llm": ("svd-llm", {}),
}


def page(rows: list[dict[str, Any]], command: str) -> str:
    ok = [row for row in rows if "error" not in row]
    lines = [header("Calibration size: fidelity against the number of calibration trajectories", command)]
    if not ok:
        return lines[0] + "No measurements.\n"
    hs = horizons(ok)
    lines.append(
        "Reference model `ns2d-transformer`; calibration on N trajectories of 5 steps (the recipes without "
        "rollouts use their 5 N teacher-forced one-step batches), two calibration sets per size, means "
        "shown. Relative change (%) of the base loss: one step on the test split, and after h steps on the "
        "32 test trajectories. Time: `compress` wall seconds, one thread.\n"
    )
    for row in rows:
        if "error" in row:
            lines.append(f"- failed: {row['label']} at {row['ratio']}, N = {row['samples']}: {row['error']}")
    grouped: dict[tuple[str, float, int], list[dict[str, Any]]] = defaultdict(list)
    for row in ok:
        grouped[row["label"], row["ratio"], row["samples"]].append(row)
    for ratio in sorted({key[1] for key in grouped}, reverse=True):
        lines += [
            f"\n## Ratio {ratio}\n",
            "| variant | N | one step | " + " | ".join(f"h = {h}" for h in hs) + " | time (s) |",
            "|---|---|---|" + "---|" * len(hs) + "---|",
        ]
        for label in VARIANTS:
            for size in sorted({key[2] for key in grouped}):
                group = grouped.get((label, ratio, size))
                if not group:
                    continue
                cells = [statistics.fmean(change(row, c) for row in group) for c in (None, *hs)]
                seconds = statistics.fmean(row["seconds"] for row in group)
                lines.append(
                    f"| {label} | {size} | " + " | ".join(f"{c:.2f}" for c in cells) + f" | {seconds:.1f} |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one size and one calibration set")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results")
    args = parser.parse_args(argv)
    sizes, seeds = (SIZES[:1], SEEDS[:1]) if args.quick else (SIZES, SEEDS)
    jobs = [
        (measure_rollout, (recipe, ratio, options), {"seed": seed, "samples": size}, {"label": label})
        for ratio in RATIOS
        for label, (recipe, options) in VARIANTS.items()
        for size in sizes
        for seed in seeds
    ]
    rows = run_isolated(jobs)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.calibration_size" + (" --quick" if args.quick else "")
    (args.out / "calibration-size.md").write_text(page(rows, command))
    print(f"wrote {args.out / 'calibration-size.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
