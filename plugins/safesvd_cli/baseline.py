"""The copy-the-input baseline of a report: the error of predicting "next = current" on the same test
data, with the metrics of the evaluation (the adapter's base loss, the family's metrics). It is the
floor a PDE surrogate must beat; a model above it does worse than copying its input.

It exists only where copying means something: where each test batch holds an input tensor shaped like
its target (the same fields on the same grid). Otherwise it is omitted, and the report says why. Along
a rollout, the copy predicts the start state at every step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import Tensor

from safesvd_core import registry
from safesvd_core.plugin import ModelAdapter

BASE = "base loss"
#: The name of the baseline in tables, figures and the report.
LABEL = "copy the input"


@attrs.frozen(kw_only=True)
class CopyBaseline:
    """Metric → value of the copy predictor one step ahead, and per rollout horizon; or why there is none."""

    metrics: Mapping[str, float] = attrs.field(factory=dict)
    rollout: Mapping[int, Mapping[str, float]] = attrs.field(factory=dict)
    omitted: str | None = None

    def value(self, name: str, horizon: int | None = None) -> float | None:
        """The copy's ``name`` one step ahead (``horizon`` None) or at ``horizon``;
        None where there is none."""
        values = self.metrics if horizon is None else self.rollout.get(horizon, {})
        return values.get(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": LABEL,
            "metrics": dict(self.metrics),
            "rollout": {str(h): dict(values) for h, values in self.rollout.items()},
            "omitted": self.omitted,
        }


def copied_input(batch: Any, reference: Tensor) -> Tensor | None:
    """The tensor of ``batch`` (a tuple, list or dict) shaped like its target ``reference``, other than the
    target itself: the model's input field; None when the batch holds none (the input has other fields)."""
    values = (
        batch.values()
        if isinstance(batch, Mapping)
        else batch
        if isinstance(batch, (tuple, list))
        else (batch,)
    )
    return next(
        (
            value
            for value in values
            if isinstance(value, Tensor) and value is not reference and value.shape == reference.shape
        ),
        None,
    )


def _values(
    adapter: ModelAdapter, batch: Any, prediction: Tensor, table: Mapping[str, Any]
) -> dict[str, float]:
    values = {BASE: float(adapter.base_loss(prediction, batch))}
    if table:
        field, reference = adapter.field(batch), adapter.reference(batch)
        values.update({name: float(metric(prediction, reference, field)) for name, metric in table.items()})
    return values


def _mean(rows: list[tuple[int, dict[str, float]]]) -> dict[str, float]:
    total = sum(weight for weight, _ in rows)
    return {name: sum(weight * row[name] for weight, row in rows) / total for name in rows[0][1]}


def _missing(reference: Tensor, batch: Any) -> str:
    shapes = [
        tuple(v.shape)
        for v in (
            batch.values()
            if isinstance(batch, Mapping)
            else batch
            if isinstance(batch, (tuple, list))
            else (batch,)
        )
        if isinstance(v, Tensor) and v is not reference
    ]
    return (
        f"omitted: no input of a test batch has the target's shape {tuple(reference.shape)} (inputs "
        f"{', '.join(map(str, shapes)) or 'none'}), so the input holds other fields than the prediction and "
        "copying it predicts nothing"
    )


def copy_baseline(
    adapter: ModelAdapter,
    test: Sequence[Any],
    *,
    family: str | None = None,
    rollout: Sequence[Any] | None = None,
    horizons: Sequence[int] = (),
) -> CopyBaseline:
    """The copy predictor on the one-step ``test`` batches and, with ``rollout`` items and
    ``horizons``, at each horizon (the start state predicted at every step), with the family's metrics."""
    table = dict(registry("pde_family").create(family).metrics()) if family is not None else {}
    rows = []
    with torch.no_grad():
        for batch in test:
            reference = adapter.reference(batch)
            given = copied_input(batch, reference)
            if given is None:
                return CopyBaseline(omitted=_missing(reference, batch))
            rows.append((int(reference.shape[0]), _values(adapter, batch, given, table)))
        steps: dict[int, list[tuple[int, dict[str, float]]]] = {h: [] for h in horizons}
        for item in (rollout or []) if horizons else []:
            first = adapter.rollout_step(item, None, 1)
            start = copied_input(first, adapter.reference(first))
            if start is None:
                return CopyBaseline(omitted=_missing(adapter.reference(first), first))
            for step in sorted(steps):  # the copy predicts the start state at every step
                batch = adapter.rollout_step(item, start, step)
                steps[step].append((int(start.shape[0]), _values(adapter, batch, start, table)))
    return CopyBaseline(metrics=_mean(rows), rollout={h: _mean(found) for h, found in steps.items() if found})


__all__ = ["LABEL", "CopyBaseline", "copied_input", "copy_baseline"]
