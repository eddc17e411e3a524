"""Reference benchmark: every recipe × ratios on the reference models, paper-style tables.

    python -m benchmarks.run            # full run: ns2d-transformer and the zoo's scot-ns
    python -m benchmarks.run --quick    # the CI-sized subset, ns2d-transformer only (a few minutes)

Ablation and rollout run on the bundled reference model (ns2d-transformer) only.

Writes docs/results/{fidelity.md,fidelity.csv,ablation.md,rollout.md,cost.md,*.png}. Every
page carries the command, the git revision and the machine. Targets are reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from pathlib import Path
from typing import Any

from safesvd_core import available
from safesvd_methods.ablations import TABLE1
from safesvd_zoo import reference

from . import report
from .measure import measure

RATIOS = (0.8, 0.6, 0.4, 0.2)
QUICK_RECIPES = ("svd", "svd-llm", "safe-svd")
#: The models of the fidelity and cost tables (the quick run: the first only).
MODELS = (reference.NAME, "scot-ns")
ROLLOUT_RECIPES = ("safe-svd", "svd-llm")
#: Multi-domain recipes need domain labels: they run on the multi-physics model, not here.
MULTI_DOMAIN = ("safe-svd-balanced",)
RECIPE_OPTIONS: dict[str, dict[str, Any]] = {"safe-svd": {"family": "ns-incompressible"},
                                             "safe-svd-balanced": {"family": "ns-incompressible"}}


def _run(jobs: list[tuple[str, str, float, dict[str, Any], bool]]) -> list[dict[str, Any]]:
    """Measure each ``(model, recipe, ratio, options, rollout)`` job in a fresh process."""
    context = multiprocessing.get_context("spawn")
    rows = []
    for model, recipe, ratio, options, rollout in jobs:
        with context.Pool(1) as pool:  # a fresh process per measurement: its own peak memory
            try:
                rows.append(pool.apply(measure, (recipe, ratio, options), {"model": model, "rollout": rollout}))
            except Exception as error:  # noqa: BLE001 - a failing recipe is reported, not hidden
                rows.append({"model": model, "recipe": recipe, "ratio": ratio, "options": options,
                             "error": f"{type(error).__name__}: {error}"})
        keys = ("model", "recipe", "ratio", "seconds", "params_after", "error")
        print(json.dumps({k: rows[-1].get(k) for k in keys}), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a subset that finishes in a few minutes")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.run" + (" --quick" if args.quick else "")
    recipes = [r for r in available("recipe") if r not in MULTI_DOMAIN and (not args.quick or r in QUICK_RECIPES)]
    ratios = (0.6, 0.4) if args.quick else RATIOS
    fidelity = _run([(model, r, ratio, RECIPE_OPTIONS.get(r, {}), model == reference.NAME and r in ROLLOUT_RECIPES)
                     for model in (MODELS[:1] if args.quick else MODELS) for r in recipes for ratio in ratios])
    ablation_ratios = (0.4,) if args.quick else (0.6, 0.4)
    ablation = _run([(reference.NAME, "safe-svd", ratio, options, False)
                     for ratio in ablation_ratios for options in TABLE1.values()])
    for row, label in zip(ablation, [label for _ in ablation_ratios for label in TABLE1]):
        row["label"] = label
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_all(args.out, command, fidelity, ablation)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
