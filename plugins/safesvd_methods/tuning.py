"""Held-out choice of recipe options (``"auto"``): each candidate compresses the model on the
calibration items but a held-out share, and the one whose compressed model degrades the base
loss least on the held-out items, averaged over the horizons they hold, is kept.

Grids: ``alpha`` in :data:`ALPHA_GRID`, ``lam_ratio`` in :data:`LAM_RATIO_GRID`, ``rollout_steps``
in ``{1, ⌈K/2⌉, K}``; several ``"auto"`` options search their product. Cost: one compression per
candidate (on the fitting share) plus the final one on every item.
"""

from __future__ import annotations

import copy
import itertools
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import nn

from safesvd_core.plugin import (
    CompressionJob,
    ConfigError,
    LocalReducer,
    ModelAdapter,
    StatisticsReducer,
    evaluating,
    run_plan,
)

AUTO = "auto"
ALPHA_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
LAM_RATIO_GRID = (1.0, 10.0, 100.0)


@attrs.frozen(kw_only=True)
class Tuning:
    """The chosen options, every candidate with its held-out score, and the held-out item count."""

    chosen: Mapping[str, Any] = attrs.field(factory=dict)
    candidates: Sequence[Mapping[str, Any]] = ()
    held_out_items: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": dict(self.chosen), "candidates": [dict(row) for row in self.candidates],
                "held_out_items": self.held_out_items}

    def summary(self) -> str:
        scores = "; ".join(", ".join(f"{k}={v}" for k, v in row.items() if k != "score") + f": {row['score']:.4f}"
                           for row in self.candidates)
        return (f"held-out choice on {self.held_out_items} item(s): {dict(self.chosen)} "
                f"(mean loss ratio compressed/original over the horizons; {scores})")


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


def held_out_losses(adapter: ModelAdapter, model: nn.Module, items: Sequence[Any], steps: int | None,
                    reducer: StatisticsReducer | None = None) -> list[float]:
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


def held_out_search(recipe: Any, job: CompressionJob, steps: int | None) -> Tuning:
    """Choose the recipe's ``"auto"`` options (see the module); an empty :class:`Tuning` when there are none."""
    grid = grids(recipe, steps)
    if not grid:
        return Tuning()
    count = len(job.batches)
    held = max(1, round(recipe.held_out * count))
    if count - held < 1:
        raise ConfigError(f"choosing {', '.join(grid)} on a held-out split needs at least 2 calibration items, got {count}")
    fit, held_out = list(job.batches[: count - held]), list(job.batches[count - held:])
    reference = held_out_losses(job.adapter, job.original, held_out, steps, job.reducer)
    rows = []
    for values in itertools.product(*grid.values()):
        options = dict(zip(grid, values))
        trial = attrs.evolve(job, batches=fit, model=copy.deepcopy(job.original), statistics=None, hooks=(),
                             progress=False)
        result = run_plan(trial, recipe.plan(options.get("steps", steps), alpha=options.get("alpha"),
                                             lam_ratio=options.get("lam_ratio")), recipe.phases())
        losses = held_out_losses(job.adapter, result.model, held_out, steps, job.reducer)
        rows.append({**options, "score": statistics.fmean(c / o for c, o in zip(losses, reference))})
    best = min(rows, key=lambda row: row["score"])  # the first of equal scores, in grid order
    return Tuning(chosen={key: best[key] for key in grid}, candidates=rows, held_out_items=held)
