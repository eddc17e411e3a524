"""``safesvd demo``, the main job: compress the zoo's reference PFM at several ratios and print a
table; with ``out``, also write the output folder ``safesvd compress`` writes (safe-svd's models,
manifests, reports and figures). It is a ``compress`` run on a fixed config, so it lives in the
application layer, above the zoo (the zoo imports no CLI module: docs/architecture.md).

The calibration data are trajectories (``CALIBRATION`` of them, ``STEPS`` steps each): ``safe-svd``
calibrates on rollouts, ``svd-llm`` on their one-step batches. The table shows the test MSE one
step ahead and after ``HORIZON`` autoregressive steps, each against the original model, and the
copy-the-input baseline (predicting the current state) on the same test data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from safesvd_zoo import reference

from . import folder, pipeline
from .baseline import LABEL
from .config import RunConfig
from .data_source import DataSpec
from .model_source import ModelSpec
from .output import OutputFolder
from .progress_option import announce_run, time_left

#: Name → options: SAFE-SVD with the incompressible-NS family's Sobolev loss, against SVD-LLM.
VARIANTS: dict[str, dict[str, object]] = {
    "safe-svd (ns-incompressible)": {"recipe": "safe-svd", "family": "ns-incompressible"},
    "svd-llm": {"recipe": "svd-llm"},
}
#: Calibration trajectories and their steps, and the rollout horizon shown. 64 trajectories: the knee
#: of docs/results/calibration-size.md (at 0.6, 32 → 64 lowers safe-svd's one-step change from 3.4 % to
#: 2.7 % and its 8-step change from 4.4 % to 2.2 %; 128 adds little, at twice the time).
CALIBRATION, STEPS, HORIZON = 64, 5, 8


def config(ratios: Sequence[float]) -> RunConfig:
    """The demo as a ``compress`` config: the zoo model, its calibration trajectories and test data."""
    return RunConfig(
        model=ModelSpec(zoo=reference.NAME),
        data=DataSpec(function="safesvd_zoo.reference:trajectory_batches", options={"samples": CALIBRATION}),
        trajectory_steps=STEPS,
        test=DataSpec(function="safesvd_zoo.reference:test_items"),
        adapter_options={
            "block_names": [f"blocks.{i}" for i in range(reference.card()["config"]["depth"])],
            "include": ["blocks.*"],
            "field_description": reference.FIELD.to_dict(),
        },
        recipe="safe-svd",
        family="ns-incompressible",
        ratios=tuple(ratios),
        horizons=(HORIZON,),
    )


def run(
    ratios: Sequence[float] = (0.8, 0.6, 0.4),
    *,
    progress: bool = False,
    out: Path | None = None,
    overwrite: bool = False,
    before_compute: Callable[[], object] = lambda: None,
) -> str:
    """Compress the reference model with each variant at each ratio; return a markdown table (and
    write safe-svd's output folder to ``out``). ``before_compute`` is called once ``out`` is checked,
    before any model runs (the CLI chooses its thread count there)."""
    target = None if out is None else OutputFolder(out, overwrite=overwrite)
    with contextlib.nullcontext() if target is None else target.locked():  # --out checked before any compute
        before_compute()
        torch.manual_seed(0)
        prepared = pipeline.prepare(config(ratios))
        model = prepared.model
        original = reference.test_loss(model)
        rows = [
            "| method | ratio | parameters kept | test MSE | Δ one step | "
            f"Δ after {HORIZON} steps | time (s) |",
            "|---|---|---|---|---|---|---|",
            f"| original | 1.0 | {sum(p.numel() for p in model.parameters()):,} | {original:.6f} | "
            "— | — | — |",
        ]
        ours, seconds = [], {label: [] for label in VARIANTS}  # per variant: their costs differ several-fold
        for ratio in ratios:
            for label, options in VARIANTS.items():
                if progress:
                    left = [time_left(times, len(ratios) - len(times)) for times in seconds.values()]
                    announce_run(
                        sum(map(len, seconds.values())) + 1,
                        len(ratios) * len(VARIANTS),
                        f"{label} at ratio {ratio:g}",
                        None if None in left else sum(left),
                    )
                done = pipeline.run(prepared, ratio, recipe=str(options["recipe"]), progress=progress)
                seconds[label].append(done.seconds)
                result, report = done.result, done.report
                one, later = report.metric("base loss"), report.metric("base loss", HORIZON)
                rows.append(
                    f"| {label} | {ratio} | {result.params_after:,} ({result.kept_ratio:.3f}) | "
                    f"{one.compressed:.6f} | {one.signed_change_percent:+.2f} % | "
                    f"{later.signed_change_percent:+.2f} % | {done.seconds:.1f} |"
                )
                if options["recipe"] == prepared.config.recipe:
                    ours.append(done)
        copy = pipeline.copy_input(prepared)
        if ours and copy.omitted is None:  # the floor: the error of predicting the current state
            one, later = ours[0].report.metric("base loss"), ours[0].report.metric("base loss", HORIZON)
            copied = [copy.value("base loss"), copy.value("base loss", HORIZON)]
            rows.insert(
                3,
                f"| {LABEL} (next = current) | — | 0 | {copied[0]:.6f} | "
                f"{100 * (copied[0] - one.original) / one.original:+.2f} % | "
                f"{100 * (copied[1] - later.original) / later.original:+.2f} % | — |",
            )
        rows.append("")
        rows.append(
            f"Reference model: {reference.NAME} (2-D incompressible NS, lead time "
            f"{reference.LEAD_TIME}). Calibration: {CALIBRATION} trajectories of {STEPS} steps "
            "(safe-svd rolls out; svd-llm uses their one-step pairs). Test: "
            f"{sum(len(b[0]) for b in prepared.test)} one-step pairs, 32 trajectories. "
            f"Δ: against the original; for {LABEL}, copying's error against the original's."
        )
        if target is not None:
            target.write(lambda where: folder.write(where, prepared, ours))
            rows.append(
                f"Written: {out} (safe-svd's models, manifests, reports and figures; "
                "`safesvd inspect`, `evaluate` and `export` read its model folders)."
            )
        return "\n".join(rows)
