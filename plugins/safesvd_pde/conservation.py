"""Drift of conserved totals (mass, momentum, energy) between a reference and a prediction.

Beyond the paper. Whether ``reference`` is the model input (conservation over one step) or the
target (agreement of totals with the ground truth) is the caller's choice: the loss compares the
two fields it is given. Totals are only conserved when no flux crosses the boundary (periodic or
closed domains); elsewhere read the value as a comparison of totals, not a conservation law.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
import torch
from torch import Tensor

from safesvd_core.plugin import (
    MOMENTUM_ROLES,
    VELOCITY_ROLES,
    ConfigError,
    FieldDescription,
    PhysicsLoss,
    Role,
    check_pair,
    finite,
)

from .validation import is_finite_non_negative

#: Quantity → the channel roles whose totals are conserved.
QUANTITIES: dict[str, tuple[Role, ...]] = {
    "mass": (Role.DENSITY, Role.WATER_HEIGHT),
    "momentum": tuple(MOMENTUM_ROLES.values()),
    "energy": (Role.ENERGY,),
}


def totals(u: Tensor, field: FieldDescription) -> Tensor:
    """``∫ u dV`` per sample and channel (sum × cell volume), shape ``(batch, channels)``."""
    field.check_shape(u.shape)
    return _integrate(u, field)


def _integrate(u: Tensor, field: FieldDescription) -> Tensor:
    return u.flatten(2).sum(-1) * field.cell_volume


def _quantities(value: Any) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names or any(name not in QUANTITIES for name in names):
        raise ConfigError(
            f"conservation quantities: expected a non-empty subset of {', '.join(QUANTITIES)}, got {value!r}"
        )
    return names


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not is_finite_non_negative(value):
        raise ConfigError(f"conservation {attribute.name}: expected a finite number ≥ 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Conservation(PhysicsLoss):
    """Mean over samples and conserved quantities of ``|∫(q_pred − q_ref)| / (∫|q_ref| + eps·|Ω|)``.

    ``q`` are the channels whose role is listed in :data:`QUANTITIES` for ``quantities``. With
    ``derive_momentum`` and no momentum channels, momentum is ``density × velocity`` per velocity
    component present. ``eps`` is a floor on the mean magnitude, for totals of (near) zero.
    """

    name: ClassVar[str] = "conservation"

    quantities: tuple[str, ...] = attrs.field(default=tuple(QUANTITIES), converter=_quantities)
    derive_momentum: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    eps: float = attrs.field(default=1e-12, validator=_non_negative)

    def conserved(self, u: Tensor, field: FieldDescription) -> Tensor:
        """The conserved densities ``(batch, q, *grid)`` this loss compares."""
        field.check_shape(u.shape)
        parts: list[Tensor] = []
        for quantity in self.quantities:
            channels = [c for role in QUANTITIES[quantity] for c in field.channels_with_role(role)]
            if channels:
                parts.append(u[:, channels])
            elif quantity == "momentum" and self.derive_momentum:
                parts.extend(self._momentum(u, field))
        if not parts:
            roles = ", ".join(role.value for quantity in self.quantities for role in QUANTITIES[quantity])
            raise ConfigError(
                f"conservation needs an unmasked channel with role(s) among {roles}"
                + (
                    " (or density with velocity)"
                    if "momentum" in self.quantities and self.derive_momentum
                    else ""
                )
                + f" for quantities {', '.join(self.quantities)}; the field has roles "
                + ", ".join(role.value for role in field.roles)
            )
        return torch.cat(parts, dim=1)

    def _momentum(self, u: Tensor, field: FieldDescription) -> list[Tensor]:
        density = field.channels_with_role(Role.DENSITY)
        velocity = [c for role in VELOCITY_ROLES.values() for c in field.channels_with_role(role)]
        if not density or not velocity:
            return []
        if len(density) > 1:
            raise ConfigError(
                f"conservation: momentum = density × velocity needs one density channel, got {len(density)}; "
                "pass derive_momentum=False or give momentum channels"
            )
        return [u[:, density] * u[:, velocity]]

    def __call__(self, prediction: Tensor, reference: Tensor, field: FieldDescription) -> Tensor:
        check_pair(prediction, reference, field)
        q_pred, q_ref = self.conserved(prediction, field), self.conserved(reference, field)
        drift = _integrate(q_pred - q_ref, field).abs()
        domain = field.cell_volume * math.prod(q_ref.shape[2:])
        scale = _integrate(q_ref.abs(), field) + self.eps * domain
        return finite((drift / scale).mean(), self.name)
