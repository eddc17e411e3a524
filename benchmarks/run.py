"""Reference benchmark: every recipe × ratios on the reference models, paper-style tables.

    python -m benchmarks.run                     # full run: every part
    python -m benchmarks.run --parts rollout     # some parts; the pages use the saved rows of the others
    python -m benchmarks.run --parts             # no measurement: render the pages from the saved rows
    python -m benchmarks.run --quick             # the CI-sized subset (a few minutes)

Parts: ``fidelity`` (one step, ns2d-transformer and the zoo's scot-ns), ``ablation`` (the paper's
Table 1 rows), ``rollout`` (every recipe calibrated on trajectories, averaged over three
calibration sets, horizons 1/3/5/8) and ``rollout-ablation`` (the rollout mechanisms). Each part's
rows are saved as JSON under ``<out>/raw/``; the pages are rendered from every saved part.

Writes docs/results/{fidelity.md,fidelity.csv,ablation.md,rollout.md,cost.md,*.png}. Every
page carries the command, the git revision and the machine. Targets are reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safesvd_core import available
from safesvd_methods.ablations import ROLLOUT, TABLE1
from safesvd_zoo import reference

from . import report, rollout_report
from .measure import copy_losses, measure, measure_rollout

RATIOS = (0.8, 0.6, 0.4, 0.2)
QUICK_RECIPES = ("svd", "svd-llm", "safe-svd")
QUICK_ROLLOUT_RECIPES = ("svd-llm", "saes-svd", "safe-svd")
#: The models of the fidelity and cost tables (the quick run: the first only).
MODELS = (reference.NAME, "scot-ns")
#: Multi-domain recipes need domain labels: they run on the multi-physics model, not here.
MULTI_DOMAIN = ("safe-svd-balanced",)
RECIPE_OPTIONS: dict[str, dict[str, Any]] = {
    "safe-svd": {"family": "ns-incompressible"},
    "safe-svd-balanced": {"family": "ns-incompressible"},
}
PARTS = ("fidelity", "ablation", "rollout", "rollout-ablation")

Job = tuple[Callable[..., dict[str, Any]], tuple[Any, ...], dict[str, Any], dict[str, Any]]


def run_isolated(jobs: list[Job]) -> list[dict[str, Any]]:
    """Run each ``(function, args, kwargs, labels)`` job in a fresh process;
    ``labels`` are added to its row."""
    context = multiprocessing.get_context("spawn")
    rows = []
    for function, args, kwargs, labels in jobs:
        with context.Pool(1) as pool:  # a fresh process per measurement: its own peak memory
            try:
                row = pool.apply(function, args, kwargs)
            except Exception as error:  # noqa: BLE001 - a failing recipe is reported, not hidden
                row = {
                    "recipe": args[0],
                    "ratio": args[1],
                    "options": {k: str(v) for k, v in args[2].items()},
                    **{k: v for k, v in kwargs.items() if k in ("model", "seed")},
                    "error": f"{type(error).__name__}: {error}",
                }
        rows.append({**row, **labels})
        keys = ("model", "recipe", "ratio", "seed", "seconds", "params_after", "error")
        print(json.dumps({k: rows[-1].get(k) for k in keys if k in rows[-1]}), flush=True)
    return rows


def jobs(part: str, quick: bool) -> list[Job]:
    """The measurements of one part of the benchmark."""
    single = [r for r in available("recipe") if r not in MULTI_DOMAIN]
    seeds = reference.CALIBRATION_TRAJECTORY_SEEDS[:1] if quick else reference.CALIBRATION_TRAJECTORY_SEEDS
    if part == "fidelity":
        recipes = [r for r in single if not quick or r in QUICK_RECIPES]
        return [
            (measure, (r, ratio, RECIPE_OPTIONS.get(r, {})), {"model": model}, {})
            for model in (MODELS[:1] if quick else MODELS)
            for r in recipes
            for ratio in ((0.6, 0.4) if quick else RATIOS)
        ]
    if part == "ablation":
        return [
            (measure, ("safe-svd", ratio, options), {}, {"label": label})
            for ratio in ((0.4,) if quick else (0.6, 0.4))
            for label, options in TABLE1.items()
        ]
    if part == "rollout":
        recipes = [r for r in single if not quick or r in QUICK_ROLLOUT_RECIPES]
        return [
            (measure_rollout, (r, ratio, RECIPE_OPTIONS.get(r, {})), {"seed": seed}, {})
            for r in recipes
            for ratio in ((0.4,) if quick else RATIOS)
            for seed in seeds
        ]
    if part == "rollout-ablation":
        return [
            (
                measure_rollout,
                ("safe-svd", ratio, {**RECIPE_OPTIONS["safe-svd"], **options}),
                {"seed": seed},
                {"label": label},
            )
            for ratio in (0.6, 0.4)
            for label, options in ROLLOUT.items()
            for seed in seeds
        ]
    raise ValueError(f"unknown part {part!r}; parts: {', '.join(PARTS)}")


def _saved(out: Path, part: str) -> list[dict[str, Any]]:
    path = out / "raw" / f"{part}.json"
    return json.loads(path.read_text()) if path.exists() else []


def render(out: Path, command: str) -> None:
    """Every page from the saved rows of every part; the ablation page has both ablations."""
    report.write_all(out, command, _saved(out, "fidelity"), _saved(out, "ablation"))
    rows, ablation_rows = _saved(out, "rollout"), _saved(out, "rollout-ablation")
    if ablation_rows:
        with open(out / "ablation.md", "a") as page:
            page.write(
                "\n" + rollout_report.ablation(ablation_rows, rollout_report.horizons(ablation_rows)) + "\n"
            )
    try:
        images = rollout_report.plot(out, rows)
    except ImportError:
        images = []
    copy = (
        rollout_report.copy_changes(rows, copy_losses()) if any("error" not in row for row in rows) else None
    )
    (out / "rollout.md").write_text(rollout_report.page(rows, ablation_rows, command, images, copy))
    (out / "cost.md").write_text(report.cost(_saved(out, "fidelity"), command, rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a subset that finishes in a few minutes")
    parser.add_argument(
        "--parts",
        nargs="*",
        choices=PARTS,
        default=None,
        help="measure these parts only (default: all; --quick: all but rollout-ablation; "
        "none: render the pages from the saved rows)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results")
    args = parser.parse_args(argv)
    parts = (
        args.parts
        if args.parts is not None
        else [p for p in PARTS if not (args.quick and p == "rollout-ablation")]
    )
    command = (
        "python -m benchmarks.run"
        + (" --quick" if args.quick else "")
        + (" (in parts; each part's rows are kept in raw/<part>.json)" if args.parts is not None else "")
    )
    (args.out / "raw").mkdir(parents=True, exist_ok=True)
    for part in parts:
        rows = run_isolated(jobs(part, args.quick))
        (args.out / "raw" / f"{part}.json").write_text(json.dumps(rows, indent=1))
    render(args.out, command)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
