"""The refine phase on the calibration items (``refine_epochs``, beyond the paper): after the solve,
the compressed model is distilled towards the original on the calibration items themselves, with
the core's refinement loop (:func:`safesvd_core.plugin.distil`, no held-out split).

The calibration items are few, so this tends to overfit: ``compress(...,
refine=Refinement(...))`` with fresh inputs is the refinement to use (docs/fine-tune.md); this phase warns.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import attrs

from safesvd_core.plugin import (
    DEFAULTS,
    ConfigError,
    Phase,
    RefineDataWarning,
    RefineOptions,
    RunState,
    distil,
    positive,
    positive_int,
)


@attrs.frozen(kw_only=True)
class RefinePhase(Phase):
    """``epochs`` passes of Adam (peak ``lr``) over the calibration items, every parameter of the
    compressed model trained towards the original's predictions (one step, or the recipe's rollout)."""

    name: ClassVar[str] = "refine"
    reads: ClassVar[tuple[str, ...]] = ("progress",)  # the solved model

    epochs: int = attrs.field(validator=positive_int)
    lr: float = attrs.field(default=DEFAULTS.refine_lr, validator=positive)

    def check(self, state: RunState) -> None:
        if state.job.reducer.world > 1:
            raise ConfigError(
                "refine_epochs does not run distributed yet (its training steps are not synchronised); "
                "refine in one process"
            )

    def run(self, state: RunState) -> None:
        job = state.job
        warnings.warn(
            "refine_epochs trains on the calibration items alone and tends to overfit them; give fresh "
            "inputs instead: compress(..., refine=Refinement(inputs, steps=...))",
            RefineDataWarning,
            stacklevel=2,
        )
        steps = self.epochs * len(job.batches)
        options = RefineOptions(steps=steps, lr=self.lr, warmup=0, held_out=0.0, eval_every=steps)
        report = distil(
            job.original, job.model, job.adapter, job.batches, options, progress=job.show_progress
        )
        state.count(self.name, self.epochs)
        state.log.reports[self.name] = report
        (row,) = report["history"]
        state.log.notes.append(
            f"refine: {self.epochs} epochs of Adam (lr {self.lr:g}) on the calibration items; mean "
            f"distance to the original over the steps {row['train']:.4g}"
        )
