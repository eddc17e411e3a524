"""The λ phase: the weight of the physics terms in the calibration loss, and the loss itself."""

from __future__ import annotations

from typing import ClassVar

import torch

from ._job import Phase, RunState
from ._objective import CalibrationObjective, balanced_lambda, loss_totals


class LambdaPhase(Phase):
    """Sets ``state.lam`` (global mode: resumed from the statistics' metadata, balanced with
    ``lam="auto"`` by one no-grad pass, or the plan's number) and ``state.objective``."""

    name: ClassVar[str] = "lambda"

    def run(self, state: RunState) -> None:
        job, plan = state.job, state.plan
        lam: float | None = None
        if plan.physics and plan.lam_mode == "global":
            resumed = None if job.statistics is None else job.statistics.metadata.get("lam")
            if plan.lam == "auto" and resumed is not None:
                lam = float(resumed)  # λ was balanced with these statistics
            elif plan.lam == "auto":
                with torch.no_grad():
                    calls = (call for item in job.batches for call in state.source.predictions(job.adapter, job.original, item))
                    totals = job.reducer.sum_values(loss_totals(calls, job.adapter, plan.physics))
                lam = balanced_lambda(totals[0], totals[1], int(totals[2]), ratio=plan.lam_ratio)
                state.count(self.name)
            else:
                lam = float(plan.lam)
        state.lam = lam
        state.objective = CalibrationObjective(adapter=job.adapter, physics=plan.physics, lam=lam or 0.0,
                                               mode=plan.lam_mode, lam_ratio=plan.lam_ratio, lam_cap=plan.lam_cap,
                                               residual=plan.residual, seed=plan.seed)
