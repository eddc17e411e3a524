"""Velocity losses: divergence residual, divergence-free violation and vorticity error."""

from __future__ import annotations

from typing import ClassVar

import attrs
from torch import Tensor

from safesvd_core.plugin import FieldDescription, PhysicsLoss, check_pair, finite

from .finite_difference import divergence, vorticity


@attrs.frozen(kw_only=True)
class Divergence(PhysicsLoss):
    """``mean |div(prediction) − div(reference)|`` of the velocity channels."""

    name: ClassVar[str] = "divergence"

    def __call__(self, prediction: Tensor, reference: Tensor, field: FieldDescription) -> Tensor:
        check_pair(prediction, reference, field)
        return finite(divergence(prediction - reference, field).abs().mean(), self.name)


@attrs.frozen(kw_only=True)
class DivergenceFree(PhysicsLoss):
    """``mean |div(prediction)|``: the incompressibility violation of the prediction alone.

    A constraint residual: ``reference`` is only shape-checked, and the loss is zero when the
    prediction is (discretely) divergence-free, not merely when it equals the reference.
    """

    name: ClassVar[str] = "divergence-free"

    def __call__(self, prediction: Tensor, reference: Tensor, field: FieldDescription) -> Tensor:
        check_pair(prediction, reference, field)
        return finite(divergence(prediction, field).abs().mean(), self.name)


@attrs.frozen(kw_only=True)
class Vorticity(PhysicsLoss):
    """``mean |ω_pred − ω_ref|``; in 3-D the mean runs over the three curl components too."""

    name: ClassVar[str] = "vorticity"

    def __call__(self, prediction: Tensor, reference: Tensor, field: FieldDescription) -> Tensor:
        check_pair(prediction, reference, field)
        return finite(vorticity(prediction - reference, field).abs().mean(), self.name)
