"""The λ phase: the weight of the physics terms in the calibration loss, and the loss itself."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

from ..._defaults import DEFAULTS
from ...kinds._plugins import registry
from ...kinds._validators import auto_or, lam_value, one_of, positive
from ...physics._objective import LAM_MODES, LAM_RECORD, balanced_lambda, loss_totals
from ...physics._specs import PhysicsSpec, as_specs, physics_terms
from .._job import Phase, RunState
from .._plan_draft import PlanDraft


@attrs.frozen(kw_only=True)
class LambdaPhase(Phase):
    """Writes ``state.objective``, the calibration loss with its λ (global mode: the λ resumed
    statistics were gathered with, balanced with ``lam="auto"`` by one no-grad pass, or the plan's number).

    Options (in a list of phases; they set the plan's objective): ``physics`` (loss names,
    ``{"name": ..., **options}`` dicts or losses), else ``family``'s Sobolev loss of order
    ``sobolev_order`` (the family's by default) and exponent ``sobolev_p``; ``lam`` (``"auto"`` or a
    number), ``lam_ratio`` (the 10 of λ = 10·L_base/L_phys; ``"auto"`` with a tuning phase),
    ``lam_mode`` (``"global"`` or ``"per-order"``, capped at ``lam_cap``).
    """

    name: ClassVar[str] = "lambda"
    writes: ClassVar[tuple[str, ...]] = ("objective",)

    physics: tuple[PhysicsSpec, ...] = attrs.field(default=(), converter=as_specs)
    #: A registered PDE family's name (looked up when the list is assembled).
    family: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(str))
    )
    sobolev_order: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(one_of((0, 1, 2)))
    )
    sobolev_p: int = attrs.field(default=1, validator=one_of((1, 2)))
    lam: float | str = attrs.field(default=DEFAULTS.lam, validator=lam_value)
    lam_ratio: float | str = attrs.field(default=DEFAULTS.lam_ratio, validator=auto_or(positive))
    lam_mode: str = attrs.field(default=DEFAULTS.lam_mode, validator=one_of(LAM_MODES))
    lam_cap: float = attrs.field(default=DEFAULTS.lam_cap, validator=positive)

    def configure(self, draft: PlanDraft) -> None:
        draft.set(
            self,
            physics=physics_terms(self.physics, self.family, self.sobolev_order, self.sobolev_p),
            lam=self.lam,
            lam_ratio=draft.auto(self, "lam_ratio", self.lam_ratio, DEFAULTS.lam_ratio),
            lam_mode=self.lam_mode,
            lam_cap=self.lam_cap,
            family=registry("pde_family").create(self.family) if self.family else None,
        )

    def run(self, state: RunState) -> None:
        job, spec = state.job, state.plan.objective
        lam: float | None = None
        if spec.physics and spec.lam_mode == "global":
            resumed = None if job.saved_statistics is None else job.saved_statistics.metadata.get(LAM_RECORD)
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
