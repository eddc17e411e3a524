"""The calibration loss ``L = L_base + λ · Σ physics`` and the "auto" choice of λ (METHOD.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import torch
from torch import Tensor

from ._errors import ConfigError, NumericalError
from ._interfaces import ModelAdapter, PhysicsLoss


#: Where the calibration loss's gradients are taken (the Fisher's residuals). ``"observed"``
#: (the paper's empirical Fisher): at the model's own residual against the target. ``"sampled"``
#: (the model Fisher): at a residual sampled at the observed scale, ``σ ε`` with ``ε ~ N(0, I)`` and
#: ``σ`` the RMS of the observed residual of the batch, as if targets were drawn from the model's
#: predictive distribution; the loss keeps its form (base loss, physics terms, λ).
RESIDUALS = ("observed", "sampled")

#: How physics terms are weighted against the base loss.
#: ``"global"`` (default, §E.2): one λ for the summed physics terms, fixed before calibration.
#: ``"per-order"`` (the authors' public script): per batch, each derivative order ``k`` of each
#: loss gets ``min(lam_ratio · L_base / L_k, lam_cap)`` (weights detached from the graph).
LAM_MODES = ("global", "per-order")


@attrs.frozen(kw_only=True)
class CalibrationObjective:
    """``base_loss + lam · Σ_i loss_i(prediction, reference, field)`` for one adapter
    (or, in ``"per-order"`` mode, per-batch balanced weights per derivative order)."""

    adapter: ModelAdapter
    physics: tuple[PhysicsLoss, ...] = ()
    lam: float = 0.0
    mode: str = "global"
    lam_ratio: float = 10.0
    lam_cap: float = 1000.0
    residual: str = "observed"
    seed: int = 0
    _noise: torch.Generator | None = attrs.field(default=None, eq=False, repr=False, alias="noise")

    def for_item(self, index: int) -> CalibrationObjective:
        """The objective for calibration item ``index``: with sampled residuals, its own noise
        stream (seeded by ``seed`` and ``index``), so the draws do not depend on the pass that runs it."""
        if self.residual == "observed":
            return self
        return attrs.evolve(self, noise=torch.Generator().manual_seed(hash((self.seed, index)) % 2**63))

    def _sampled(self, prediction: Tensor, batch: Any) -> Tensor:
        """``prediction`` moved to ``reference + σ ε``, still differentiable with unit Jacobian."""
        reference = self.adapter.reference(batch)
        scale = (prediction.detach() - reference).pow(2).mean().sqrt().clamp_min(torch.finfo(prediction.dtype).tiny)
        noise = self._noise if self._noise is not None else torch.Generator().manual_seed(self.seed)
        draw = torch.randn(prediction.shape, generator=noise, dtype=prediction.dtype).to(prediction.device)
        return prediction - prediction.detach() + reference + scale * draw

    def _field(self, batch: Any):
        field = self.adapter.field(batch)
        if field is None:
            names = ", ".join(loss.name for loss in self.physics)
            raise ConfigError(
                f"physics losses ({names}) need a field description, but adapter "
                f"{self.adapter.name!r} gave none for this batch; pass one to the adapter"
            )
        return field

    def order_terms(self, prediction: Tensor, batch: Any) -> list[Tensor]:
        """Each physics loss split per derivative order (:meth:`PhysicsLoss.order_terms`)."""
        field = self._field(batch)
        reference = self.adapter.reference(batch)
        return [term for loss in self.physics for term in loss.order_terms(prediction, reference, field).values()]

    def physics_value(self, prediction: Tensor, batch: Any) -> Tensor:
        """The summed physics terms of one batch (a zero tensor when there are none)."""
        if not self.physics:
            return prediction.new_zeros(())
        field = self._field(batch)
        reference = self.adapter.reference(batch)
        return sum((loss(prediction, reference, field) for loss in self.physics), prediction.new_zeros(()))

    def __call__(self, prediction: Tensor, batch: Any) -> Tensor:
        if self.residual == "sampled":
            prediction = self._sampled(prediction, batch)
        value = self.adapter.base_loss(prediction, batch)
        if self.physics and self.mode == "per-order":
            base = value.detach()
            for term in self.order_terms(prediction, batch):
                weight = torch.clamp(self.lam_ratio * base / term.detach().clamp_min(1e-30), max=self.lam_cap)
                value = value + weight * term
        elif self.physics and self.lam != 0.0:
            value = value + self.lam * self.physics_value(prediction, batch)
        if not torch.isfinite(value):
            raise NumericalError(f"calibration loss is {float(value.detach())}; the batch is not skipped silently")
        return value


def loss_totals(
    calls: Iterable[tuple[Tensor, Any]], adapter: ModelAdapter, physics: Sequence[PhysicsLoss]
) -> tuple[float, float, int]:
    """``(Σ L_base, Σ L_phys, calls)`` over ``(prediction, batch)`` pairs of the original model."""
    probe = CalibrationObjective(adapter=adapter, physics=tuple(physics), lam=0.0)
    base_total = physics_total = 0.0
    count = 0
    for prediction, batch in calls:
        base_total += float(adapter.base_loss(prediction, batch))
        physics_total += float(probe.physics_value(prediction, batch))
        count += 1
    return base_total, physics_total, count


def balanced_lambda(base_total: float, physics_total: float, count: int, *, ratio: float = 10.0) -> float:
    """``λ = ratio · mean L_base / mean L_phys`` over the calibration set (§E.2), from :func:`loss_totals`."""
    if count == 0:
        raise ConfigError("the calibration set is empty")
    if not (physics_total > 0.0 and base_total >= 0.0) or physics_total != physics_total:
        raise NumericalError(
            f"cannot balance λ automatically: mean base loss {base_total / count:.3e}, mean physics loss "
            f"{physics_total / count:.3e}; pass a number for lam"
        )
    return ratio * base_total / physics_total
