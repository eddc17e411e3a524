"""Explicit time integration shared by the finite-difference and finite-volume generators."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from safesvd_core.plugin import NumericalError


def integrate(
    rhs: Callable[[Tensor], Tensor], state: Tensor, duration: float, dt: Callable[[Tensor], float]
) -> Tensor:
    """Advance ``state`` by ``duration`` with SSP-RK3 (Shu–Osher),
    steps of ``dt(state)`` (the last one shortened)."""
    elapsed = 0.0
    while elapsed < duration * (1 - 1e-12):
        step = min(dt(state), duration - elapsed)
        if not step > 0:
            raise NumericalError(
                f"time step {step} at t = {elapsed}: the state is no longer finite or admissible"
            )
        first = state + step * rhs(state)
        second = 0.75 * state + 0.25 * (first + step * rhs(first))
        state = state / 3 + 2 / 3 * (second + step * rhs(second))
        elapsed += step
    if not torch.isfinite(state).all():
        raise NumericalError(f"the solution became non-finite within t = {duration}")
    return state


__all__ = ["integrate"]
