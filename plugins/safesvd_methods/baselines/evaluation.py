"""The calibration loss of a model, for the recipes that search or train against it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from safesvd_core.plugin import CalibrationObjective, CompressionJob


def mean_loss(job: CompressionJob, batches: Sequence[Any]) -> float:
    """The adapter's base loss of ``job.model`` averaged over ``batches`` (no grad; non-finite raises)."""
    objective = CalibrationObjective(adapter=job.adapter)
    with torch.no_grad():
        return sum(float(objective(job.adapter.predict(job.model, batch), batch)) for batch in batches) / len(
            batches
        )
