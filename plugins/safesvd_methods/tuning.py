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
    CompressionJob,
    ConfigError,
    LocalReducer,
    ModelAdapter,
    Phase,
    RunState,
    StatisticsReducer,
    evaluating,
    run_plan,
)

AUTO = "auto"
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


def grids(recipe: Any, steps: int | None) -> dict[str, tuple[Any, ...]]:
    """Option → candidate values, for the recipe's ``"auto"`` options."""
    out: dict[str, tuple[Any, ...]] = {}
    if recipe.alpha == AUTO:
        out["alpha"] = ALPHA_GRID
    if recipe.lam_ratio == AUTO:
        out["lam_ratio"] = LAM_RATIO_GRID
    if recipe.rollout_steps == AUTO and steps is not None:
        out["steps"] = tuple(sorted({1, (steps + 1) // 2, steps}))
    return out


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
    recipe: Any, job: CompressionJob, steps: int | None, phases: Sequence[Phase] | None = None
) -> Tuning:
    """Choose the recipe's ``"auto"`` options (see the module); an empty :class:`Tuning` when there are
    none. Each candidate runs through ``phases`` (default: the recipe's, without the tuning phase)."""
    grid = grids(recipe, steps)
    if not grid:
        return Tuning()
    count = len(job.batches)
    held = max(1, round(recipe.held_out * count))
    if count - held < 1:
        raise ConfigError(
            f"choosing {', '.join(grid)} on a held-out split needs at least 2 calibration items, got {count}"
        )
    fit, held_out = list(job.batches[: count - held]), list(job.batches[count - held :])
    if phases is None:
        phases = [phase for phase in recipe.phases() if phase.name != TuningPhase.name]
    reference = held_out_losses(job.adapter, job.original, held_out, steps, job.reducer)
    rows, passes = [], 0
    for values in itertools.product(*grid.values()):
        options = dict(zip(grid, values))
        trial = attrs.evolve(
            job, batches=fit, model=copy.deepcopy(job.original), statistics=None, hooks=(), progress=False
        )
        result = run_plan(
            trial,
            recipe.plan(
                options.get("steps", steps), alpha=options.get("alpha"), lam_ratio=options.get("lam_ratio")
            ),
            phases,
        )
        passes += sum(result.passes.values())
        losses = held_out_losses(job.adapter, result.model, held_out, steps, job.reducer)
        rows.append({**options, "score": statistics.fmean(c / o for c, o in zip(losses, reference))})
    best = min(rows, key=lambda row: row["score"])  # the first of equal scores, in grid order
    return Tuning(
        chosen={key: best[key] for key in grid}, candidates=rows, held_out_items=held, passes=passes
    )


@attrs.frozen
class TuningPhase(Phase):
    """The held-out choice of ``recipe``'s ``"auto"`` options (a ``safe-svd`` recipe), the first phase
    of the run: until it runs, the plan holds the options' defaults in their place (what the other
    phases' checks saw). It compresses every candidate (:func:`held_out_search`, through the recipe's
    other phases), sets ``state.plan`` to the chosen options' plan, which every later phase checks
    again, and records the choice: ``log.reports["tuning"]`` (``result.tuning``), a note, and the
    candidates' passes. With nothing to choose (``rollout_steps="auto"`` on one-step items) it does
    nothing."""

    name: ClassVar[str] = "tuning"
    writes: ClassVar[tuple[str, ...]] = ("plan",)

    recipe: Any

    def run(self, state: RunState) -> None:
        steps = self.recipe.steps(state.job)
        later = [phase for phase in self.recipe.phases() if phase.name != self.name]
        tuning = held_out_search(self.recipe, state.job, steps, later)
        if not tuning.candidates:
            return
        chosen = tuning.chosen
        steps = chosen.get("steps", steps)
        state.plan = self.recipe.plan(steps, alpha=chosen.get("alpha"), lam_ratio=chosen.get("lam_ratio"))
        for phase in later:
            phase.check(state)
        state.count(self.name, tuning.passes)
        state.log.reports[self.name] = tuning.to_dict()
        state.log.notes.append(tuning.summary())
