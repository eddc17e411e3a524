"""The λ phase: the weight of the physics terms in the calibration loss, and the loss itself."""

from __future__ import annotations

from typing import ClassVar

import torch

from ...physics._objective import LAM_RECORD, balanced_lambda, loss_totals
from .._job import Phase, RunState


class LambdaPhase(Phase):
    """Writes ``state.objective``, the calibration loss with its λ (global mode: the λ resumed
    statistics were gathered with, balanced with ``lam="auto"`` by one no-grad pass, or the plan's number)."""

    name: ClassVar[str] = "lambda"
    writes: ClassVar[tuple[str, ...]] = ("objective",)

    def run(self, state: RunState) -> None:
        job, spec = state.job, state.plan.objective
        lam: float | None = None
        if spec.physics and spec.lam_mode == "global":
            resumed = None if job.statistics is None else job.statistics.metadata.get(LAM_RECORD)
            if spec.lam == "auto" and resumed is not None:
                lam = float(resumed)  # λ was balanced with these statistics
            elif spec.lam == "auto":
                with torch.no_grad():
                    calls = (
                        call
                        for item in job.batches
                        for call in state.source.predictions(job.adapter, job.original, item)
                    )
                    totals = job.reducer.sum_values(loss_totals(calls, job.adapter, spec.physics))
                lam = balanced_lambda(totals[0], totals[1], int(totals[2]), ratio=spec.lam_ratio)
                state.count(self.name)
            else:
                lam = float(spec.lam)
        state.objective = spec.build(job.adapter, lam)
