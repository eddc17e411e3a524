"""Evaluation in the paper's form: each metric for the original and the compressed model, and
the relative change ``|M_compressed − M_original| / M_original`` in percent (App. C.3)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from ._errors import ConfigError, NumericalError
from ._structures import tensor_leaves
from .kinds._interfaces import ModelAdapter
from .kinds._make_adapter import make_adapter
from .kinds._plugins import registry
from .physics._family import Metric
from .run._items import check_finite, check_runs, materialise
from .run._rollout import check_steps

BASE = "base loss"


@attrs.frozen(kw_only=True)
class MetricChange:
    """One metric for both models."""

    name: str
    original: float
    compressed: float

    @property
    def change_percent(self) -> float:
        """``100 · |compressed − original| / |original|`` (the paper's tables)."""
        if self.original == 0.0:
            return 0.0 if self.compressed == 0.0 else math.inf
        return 100.0 * abs(self.compressed - self.original) / abs(self.original)

    @property
    def signed_change_percent(self) -> float:
        """``100 · (compressed − original) / |original|``: negative when compression improved it."""
        if self.original == 0.0:
            return 0.0 if self.compressed == 0.0 else math.copysign(math.inf, self.compressed)
        return 100.0 * (self.compressed - self.original) / abs(self.original)

    def to_dict(self) -> dict[str, float | str]:
        return {
            "name": self.name,
            "original": self.original,
            "compressed": self.compressed,
            "change_percent": self.change_percent,
            "signed_change_percent": self.signed_change_percent,
        }


@attrs.frozen(kw_only=True)
class EvaluationReport:
    """Metrics on one-step prediction, and per rollout horizon when asked for."""

    metrics: tuple[MetricChange, ...]
    rollout: Mapping[int, tuple[MetricChange, ...]] = attrs.field(factory=dict)

    def metric(self, name: str, horizon: int | None = None) -> MetricChange:
        """The entry called ``name`` (at ``horizon`` steps of rollout, if given)."""
        entries = self.metrics if horizon is None else self.rollout[horizon]
        for entry in entries:
            if entry.name == name:
                return entry
        raise ConfigError(f"no metric {name!r}; the report has {', '.join(e.name for e in entries)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": [entry.to_dict() for entry in self.metrics],
            "rollout": {
                str(h): [entry.to_dict() for entry in entries] for h, entries in self.rollout.items()
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self, horizons: Sequence[int] | None = None) -> str:
        """One row per metric: original, compressed and the signed change (negative: compression
        improved it); then, with rollouts, the signed change per horizon (``horizons``: those shown,
        default all)."""
        lines = ["| metric | original | compressed | change (%) |", "|---|---|---|---|"]
        for entry in self.metrics:
            lines.append(
                f"| {entry.name} | {entry.original:.6g} | {entry.compressed:.6g} | {signed(entry)} |"
            )
        shown = sorted(self.rollout) if horizons is None else [h for h in horizons if h in self.rollout]
        if shown:
            lines += [
                "",
                "| horizon | " + " | ".join(f"{e.name} (%)" for e in self.metrics) + " |",
                "|---|" + "---|" * len(self.metrics),
            ]
            for horizon in shown:
                lines.append(f"| {horizon} | " + " | ".join(signed(e) for e in self.rollout[horizon]) + " |")
        return "\n".join(lines)


def signed(entry: MetricChange) -> str:
    """The signed change in percent, e.g. ``+12.30`` (worse) or ``-4.10`` (better)."""
    return f"{entry.signed_change_percent:+.2f}"


def evaluate(
    original: nn.Module,
    compressed: nn.Module,
    data: Iterable[Any],
    *,
    adapter: str | ModelAdapter = "generic",
    adapter_options: Mapping[str, Any] | None = None,
    family: str | None = None,
    metrics: Mapping[str, Metric] | None = None,
    rollout: Iterable[Any] | None = None,
    horizons: Sequence[int] = (),
) -> EvaluationReport:
    """Compare ``compressed`` with ``original`` on ``data``: base loss, plus the family's metrics
    (Sobolev of its order, divergence-free, vorticity, …) or the given ``metrics``.

    With ``rollout`` batches (``(input, trajectory)``, time on dim 1, see
    :meth:`ModelAdapter.rollout_step`) and ``horizons``, each metric is also measured after that
    many autoregressive steps.
    """
    adapter_obj = make_adapter(adapter, adapter_options).for_model(original)
    table = _metrics(family, metrics)
    batches = materialise(data, "evaluation")
    check_finite(batches, "evaluation")
    check_runs(adapter_obj, original, batches[0], "evaluation")
    values = {
        label: _averages(model, batches, adapter_obj, table)
        for label, model in (("original", original), ("compressed", compressed))
    }
    report_rollout: dict[int, tuple[MetricChange, ...]] = {}
    if horizons:
        if rollout is None:
            raise ConfigError("horizons were given without rollout data")
        sequences = materialise(rollout, "rollout evaluation")
        check_finite(sequences, "rollout evaluation")
        check_steps(adapter_obj, sequences, "rollout evaluation")
        per_model = {
            label: _rollout(model, sequences, adapter_obj, table, horizons)
            for label, model in (("original", original), ("compressed", compressed))
        }
        for horizon in horizons:
            report_rollout[horizon] = _changes(
                per_model["original"][horizon], per_model["compressed"][horizon]
            )
    return EvaluationReport(
        metrics=_changes(values["original"], values["compressed"]), rollout=report_rollout
    )


def _metrics(family: str | None, metrics: Mapping[str, Metric] | None) -> dict[str, Metric]:
    if metrics is not None:
        return dict(metrics)
    if family is None:
        return {}
    return dict(registry("pde_family").create(family).metrics())


def _changes(original: Mapping[str, float], compressed: Mapping[str, float]) -> tuple[MetricChange, ...]:
    return tuple(
        MetricChange(name=name, original=original[name], compressed=compressed[name]) for name in original
    )


def _batch_values(
    model: nn.Module, batch: Any, prediction: Any, adapter: ModelAdapter, table: Mapping[str, Metric]
) -> dict[str, float]:
    values = {BASE: adapter.base_loss(prediction, batch)}
    if table:
        if not isinstance(prediction, Tensor):
            raise ConfigError(
                f"metrics {sorted(table)} take a prediction tensor (one field), but the model predicts a "
                f"{type(prediction).__name__}: evaluate without family= and metrics= (the base loss is "
                "summed over its tensors)"
            )
        field = adapter.field(batch)
        if field is None:
            raise ConfigError(
                f"metrics {sorted(table)} need a field description; adapter {adapter.name!r} gave none"
            )
        reference = adapter.reference(batch)
        values.update({name: metric(prediction, reference, field) for name, metric in table.items()})
    out = {}
    for name, value in values.items():
        number = float(value)
        if not math.isfinite(number):
            raise NumericalError(f"metric {name!r} is {number} on an evaluation batch")
        out[name] = number
    return out


def _mean(rows: list[tuple[int, dict[str, float]]]) -> dict[str, float]:
    total = sum(weight for weight, _ in rows)
    return {name: sum(weight * row[name] for weight, row in rows) / total for name in rows[0][1]}


def _size(prediction: Any) -> int:
    """The batch size: the first dimension of the prediction (of its first tensor, for a structure)."""
    found = [prediction] if isinstance(prediction, Tensor) else [t for _, t in tensor_leaves(prediction)]
    return int(found[0].shape[0]) if found and found[0].ndim else 1


def _averages(
    model: nn.Module, batches: Sequence[Any], adapter: ModelAdapter, table: Mapping[str, Metric]
) -> dict[str, float]:
    was_training = model.training
    model.eval()
    rows = []
    try:
        with torch.no_grad():
            for batch in batches:
                prediction = adapter.predict(model, batch)
                rows.append((_size(prediction), _batch_values(model, batch, prediction, adapter, table)))
    finally:
        model.train(was_training)
    return _mean(rows)


def _rollout(
    model: nn.Module,
    sequences: Sequence[Any],
    adapter: ModelAdapter,
    table: Mapping[str, Metric],
    horizons: Sequence[int],
) -> dict[int, dict[str, float]]:
    if any(not isinstance(h, int) or h < 1 for h in horizons):
        raise ConfigError(f"horizons must be integers ≥ 1, got {list(horizons)}")
    last = max(horizons)
    rows: dict[int, list[tuple[int, dict[str, float]]]] = {h: [] for h in horizons}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for sequence in sequences:
                state = None
                for step in range(1, last + 1):
                    batch = adapter.rollout_step(sequence, state, step)
                    state = adapter.predict(model, batch)
                    if step in rows:
                        rows[step].append((_size(state), _batch_values(model, batch, state, adapter, table)))
    finally:
        model.train(was_training)
    return {h: _mean(rows[h]) for h in horizons}


def results_table(
    rows: Sequence[tuple[str, float, EvaluationReport]],
    *,
    horizon: int | None = None,
    signed_changes: bool = False,
) -> str:
    """The paper's layout: one row per method × ratio, one column per metric: the change in %,
    ``|Δ|`` as the paper prints it, or signed (negative: improved) with ``signed_changes``."""
    if not rows:
        raise ConfigError("no results to tabulate")
    names = [e.name for e in (rows[0][2].metrics if horizon is None else rows[0][2].rollout[horizon])]
    lines = [
        "| method | ratio | " + " | ".join(f"{n} (%)" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for method, ratio, report in rows:
        cells = [
            signed(report.metric(n, horizon))
            if signed_changes
            else f"{report.metric(n, horizon).change_percent:.3f}"
            for n in names
        ]
        lines.append(f"| {method} | {ratio} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_json(rows: Sequence[tuple[str, float, EvaluationReport]]) -> str:
    """The rows of :func:`results_table` as JSON, with every value."""
    return json.dumps([{"method": m, "ratio": r, **report.to_dict()} for m, r, report in rows], indent=2)
