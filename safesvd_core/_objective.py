"""The calibration loss ``L = L_base + λ · Σ physics`` and the "auto" choice of λ (METHOD.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from ._errors import ConfigError, NumericalError
from ._interfaces import ModelAdapter, PhysicsLoss


@attrs.frozen(kw_only=True)
class CalibrationObjective:
    """``base_loss + lam · Σ_i loss_i(prediction, reference, field)`` for one adapter."""

    adapter: ModelAdapter
    physics: tuple[PhysicsLoss, ...] = ()
    lam: float = 0.0

    def physics_value(self, prediction: Tensor, batch: Any) -> Tensor:
        """The summed physics terms of one batch (a zero tensor when there are none)."""
        if not self.physics:
            return prediction.new_zeros(())
        field = self.adapter.field(batch)
        if field is None:
            names = ", ".join(loss.name for loss in self.physics)
            raise ConfigError(
                f"physics losses ({names}) need a field description, but adapter "
                f"{self.adapter.name!r} gave none for this batch; pass one to the adapter"
            )
        reference = self.adapter.reference(batch)
        return sum((loss(prediction, reference, field) for loss in self.physics), prediction.new_zeros(()))

    def __call__(self, prediction: Tensor, batch: Any) -> Tensor:
        value = self.adapter.base_loss(prediction, batch)
        if self.physics and self.lam != 0.0:
            value = value + self.lam * self.physics_value(prediction, batch)
        if not torch.isfinite(value):
            raise NumericalError(f"calibration loss is {float(value.detach())}; the batch is not skipped silently")
        return value


def auto_lambda(
    model: nn.Module, batches: Iterable[Any], adapter: ModelAdapter, physics: Sequence[PhysicsLoss], *, ratio: float = 10.0
) -> float:
    """``λ = ratio · mean L_base / mean L_phys`` over the calibration set with ``model`` (§E.2)."""
    probe = CalibrationObjective(adapter=adapter, physics=tuple(physics), lam=0.0)
    base_total = physics_total = 0.0
    count = 0
    with torch.no_grad():
        for batch in batches:
            prediction = adapter.predict(model, batch)
            base_total += float(adapter.base_loss(prediction, batch))
            physics_total += float(probe.physics_value(prediction, batch))
            count += 1
    if count == 0:
        raise ConfigError("the calibration set is empty")
    if not (physics_total > 0.0 and base_total >= 0.0) or physics_total != physics_total:
        raise NumericalError(
            f"cannot balance λ automatically: mean base loss {base_total / count:.3e}, mean physics loss "
            f"{physics_total / count:.3e}; pass a number for lam"
        )
    return ratio * base_total / physics_total
