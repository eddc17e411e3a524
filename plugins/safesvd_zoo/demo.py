"""The main job: compress the bundled reference PFM at several ratios and print a table.

The calibration data are trajectories (``CALIBRATION`` of them, ``STEPS`` steps each): ``safe-svd``
calibrates on rollouts, ``svd-llm`` on their one-step batches. The table shows the test MSE one
step ahead and after ``HORIZON`` autoregressive steps, each against the original model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from safesvd_core import compress, evaluate

from . import reference

#: Name → options: SAFE-SVD with the incompressible-NS family's Sobolev loss, against SVD-LLM.
VARIANTS: dict[str, dict[str, object]] = {
    "safe-svd (ns-incompressible)": {"recipe": "safe-svd", "family": "ns-incompressible"},
    "svd-llm": {"recipe": "svd-llm"},
}
#: Calibration trajectories and their steps, and the rollout horizon shown. 64 trajectories: the knee
#: of docs/results/calibration-size.md (at 0.6, 32 → 64 lowers safe-svd's one-step change from 3.4 % to
#: 2.7 % and its 8-step change from 4.4 % to 2.2 %; 128 adds little, at twice the time).
CALIBRATION, STEPS, HORIZON = 64, 5, 8


def run(ratios: Sequence[float] = (0.8, 0.6, 0.4), *, progress: bool = False) -> str:
    """Compress the reference model with each variant at each ratio; return a markdown table."""
    torch.manual_seed(0)
    model = reference.load()
    calibration = reference.trajectory_batches(CALIBRATION, STEPS)
    test = reference.batches("test", batch_size=32)
    rollout = reference.trajectory_batches(32, HORIZON, seed=reference.TEST_TRAJECTORY_SEED)
    adapter_options = {"block_names": reference.block_names(model), "include": ["blocks.*"],
                       "field_description": reference.FIELD}
    original = reference.test_loss(model)
    rows = [
        f"| method | ratio | parameters kept | test MSE | Δ one step | Δ after {HORIZON} steps | time (s) |",
        "|---|---|---|---|---|---|---|",
        f"| original | 1.0 | {sum(p.numel() for p in model.parameters()):,} | {original:.6f} | — | — | — |",
    ]
    for ratio in ratios:
        for label, options in VARIANTS.items():
            start = time.perf_counter()
            result = compress(model, calibration, ratio=ratio, adapter_options=adapter_options, progress=progress, **options)
            seconds = time.perf_counter() - start
            report = evaluate(model, result.model, test, rollout=rollout, horizons=(HORIZON,))
            one, later = report.metric("base loss"), report.metric("base loss", HORIZON)
            rows.append(
                f"| {label} | {ratio} | {result.params_after:,} ({result.kept_ratio:.3f}) | {one.compressed:.6f} | "
                f"{one.signed_change_percent:+.2f} % | {later.signed_change_percent:+.2f} % | {seconds:.1f} |"
            )
    rows.append("")
    rows.append(f"Reference model: {reference.NAME} (2-D incompressible NS, lead time {reference.LEAD_TIME}). "
                f"Calibration: {CALIBRATION} trajectories of {STEPS} steps (safe-svd rolls out; svd-llm uses their "
                f"one-step pairs). Test: {sum(len(b[0]) for b in test)} one-step pairs, 32 trajectories.")
    return "\n".join(rows)
