"""Held-out choice of recipe options (``"auto"``): each candidate compresses the model on the
calibration items but a held-out share, and the one whose compressed model degrades the base
loss least on the held-out items, averaged over the horizons they hold, is kept.

Grids: ``alpha`` in :data:`ALPHA_GRID`, ``lam_ratio`` in :data:`LAM_RATIO_GRID`, ``rollout_steps``
in ``{1, ⌈K/2⌉, K}``; several ``"auto"`` options search their product. Cost: one compression per
candidate (on the fitting share) plus the final one on every item.

On the engine it is the ``tuning`` phase (:class:`TuningPhase`), the first of the run: it compresses
the candidates, sets the run's plan to the chosen options' and records the choice in the run's log
(``reports["tuning"]``, which the result gives as ``result.tuning``, and a note).
"""

from __future__ import annotations

import copy
import itertools
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import torch
from torch import nn

from safesvd_core.plugin import (
    AUTO,
    CompressionJob,
    ConfigError,
    LocalReducer,
    ModelAdapter,
    Phase,
    PlanDraft,
    RunState,
    StatisticsReducer,
    assemble,
    evaluating,
    run_phase_list,
    unit_interval,
)

ALPHA_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
LAM_RATIO_GRID = (1.0, 10.0, 100.0)


@attrs.frozen(kw_only=True)
class Tuning:
    """The chosen options, every candidate with its held-out score, and the held-out item count
    (``passes``: the candidates' runs' passes, each over the fitting share; not in :meth:`to_dict`)."""

    chosen: Mapping[str, Any] = attrs.field(factory=dict)
    candidates: Sequence[Mapping[str, Any]] = ()
    held_out_items: int = 0
    passes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": dict(self.chosen),
            "candidates": [dict(row) for row in self.candidates],
            "held_out_items": self.held_out_items,
        }

    def summary(self) -> str:
        scores = "; ".join(
            ", ".join(f"{k}={v}" for k, v in row.items() if k != "score") + f": {row['score']:.4f}"
            for row in self.candidates
        )
        return (
            f"held-out choice on {self.held_out_items} item(s): {dict(self.chosen)} "
            f"(mean loss ratio compressed/original over the horizons; {scores})"
        )


#: A grid's key → the phase option it sets.
TUNED = {"alpha": "alpha", "lam_ratio": "lam_ratio", "steps": "rollout_steps"}


def grids(phases: Sequence[Phase], steps: int | None) -> dict[str, tuple[Any, ...]]:
    """Option → candidate values, for the phases' ``"auto"`` options."""
    auto = {key for phase in phases for key, option in TUNED.items() if getattr(phase, option, None) == AUTO}
    out: dict[str, tuple[Any, ...]] = {}
    if "alpha" in auto:
        out["alpha"] = ALPHA_GRID
    if "lam_ratio" in auto:
        out["lam_ratio"] = LAM_RATIO_GRID
    if "steps" in auto and steps is not None:
        out["steps"] = tuple(sorted({1, (steps + 1) // 2, steps}))
    return out


def with_values(phases: Sequence[Phase], values: Mapping[str, Any], steps: int | None) -> tuple[Phase, ...]:
    """``phases`` with each ``"auto"`` option set to its value in ``values`` (a grid's key → value,
    one for every ``"auto"`` option :func:`grids` gave a grid); ``rollout_steps``, which has none on
    one-step items, stands at ``steps``."""
    chosen = {"rollout_steps": steps, **{TUNED[key]: value for key, value in values.items()}}
    out = []
    for phase in phases:
        autos = {option for option in TUNED.values() if getattr(phase, option, None) == AUTO}
        out.append(attrs.evolve(phase, **{option: chosen[option] for option in autos}) if autos else phase)
    return tuple(out)


def held_out_losses(
    adapter: ModelAdapter,
    model: nn.Module,
    items: Sequence[Any],
    steps: int | None,
    reducer: StatisticsReducer | None = None,
) -> list[float]:
    """The mean base loss of ``model`` on ``items`` at each horizon ``1 … steps`` (one step for
    one-step items); with a ``reducer``, over every process's items."""
    totals = [0.0] * (steps or 1)
    with torch.no_grad(), evaluating(model):
        for item in items:
            if steps is None:
                totals[0] += float(adapter.base_loss(adapter.predict(model, item), item))
                continue
            state = None
            for step in range(1, steps + 1):
                batch = adapter.rollout_step(item, state, step)
                state = adapter.predict(model, batch)
                totals[step - 1] += float(adapter.base_loss(state, batch))
    *totals, count = (reducer or LocalReducer()).sum_values([*totals, len(items)])
    return [total / count for total in totals]


def held_out_search(
    phases: Sequence[Phase], job: CompressionJob, steps: int | None, held_out: float = 0.25
) -> Tuning:
    """Choose the ``"auto"`` options of ``phases`` (see the module) on a ``held_out`` share of the
    job's items; an empty :class:`Tuning` when there are none. Each candidate runs through ``phases``."""
    grid = grids(phases, steps)
    if not grid:
        return Tuning()
    count = len(job.batches)
    held = max(1, round(held_out * count))
    if count - held < 1:
        raise ConfigError(
            f"choosing {', '.join(grid)} on a held-out split needs at least 2 calibration items, got {count}"
        )
    fit, held_out_items = list(job.batches[: count - held]), list(job.batches[count - held :])
    reference = held_out_losses(job.adapter, job.original, held_out_items, steps, job.reducer)
    rows, passes = [], 0
    for values in itertools.product(*grid.values()):
        options = dict(zip(grid, values))
        trial = attrs.evolve(
            job,
            batches=fit,
            model=copy.deepcopy(job.original),
            saved_statistics=None,
            hooks=(),
            show_progress=False,
            closing_phases=(),
        )
        result = run_phase_list(trial, with_values(phases, options, steps))
        passes += sum(result.passes.values())
        losses = held_out_losses(job.adapter, result.model, held_out_items, steps, job.reducer)
        rows.append({**options, "score": statistics.fmean(c / o for c, o in zip(losses, reference))})
    best = min(rows, key=lambda row: row["score"])  # the first of equal scores, in grid order
    return Tuning(
        chosen={key: best[key] for key in grid}, candidates=rows, held_out_items=held, passes=passes
    )


@attrs.frozen(kw_only=True)
class TuningPhase(Phase):
    """The held-out choice of the ``"auto"`` options of ``phases`` (the rest of the list, which it
    tunes), the first phase of the run: until it runs, the plan holds the options' defaults in their
    place (what the other phases' checks saw). It compresses every candidate (:func:`held_out_search`
    on a ``held_out`` share of the calibration items), sets ``state.plan`` to the chosen options'
    plan, which every later phase checks again, and records the choice: ``log.reports["tuning"]``
    (``result.tuning``), a note, and the candidates' passes. With nothing to choose
    (``rollout_steps="auto"`` on one-step items) it does nothing."""

    name: ClassVar[str] = "tuning"
    writes: ClassVar[tuple[str, ...]] = ("plan",)
    holds_following: ClassVar[bool] = True

    phases: tuple[Phase, ...] = attrs.field(converter=tuple)
    held_out: float = attrs.field(default=0.25, validator=unit_interval)

    def configure(self, draft: PlanDraft) -> None:
        draft.tuned = True

    def run(self, state: RunState) -> None:
        steps = getattr(state.plan.source, "steps", None)
        tuning = held_out_search(self.phases, state.job, steps, self.held_out)
        if not tuning.candidates:
            return
        chosen = with_values(self.phases, tuning.chosen, tuning.chosen.get("steps", steps))
        _, state.plan = assemble(state.job, chosen)
        for phase in self.phases:
            phase.check(state)
        state.count(self.name, tuning.passes)
        state.log.reports[self.name] = tuning.to_dict()
        state.log.notes.append(tuning.summary())
