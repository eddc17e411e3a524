"""Finite-difference operators on fields ``(batch, channels, *grid)``: the only place they live.

Grid axis ``i`` is tensor dimension ``2 + i`` with spacing ``spacing[i]`` (see
:class:`safesvd_core.FieldDescription` for which axis is ``x``). Every stencil is second-order accurate:

- first derivative: ``(u[i+1] − u[i−1]) / 2h`` inside and on periodic axes; at non-periodic
  edges ``(−3 u[0] + 4 u[1] − u[2]) / 2h`` and ``(3 u[n−1] − 4 u[n−2] + u[n−3]) / 2h``;
- second derivative: ``(u[i+1] − 2 u[i] + u[i−1]) / h²`` inside and on periodic axes; at a
  non-periodic edge ``(2 u[0] − 5 u[1] + 4 u[2] − u[3]) / h²``, mirrored at the other edge.

Mixed derivatives apply the one-axis operators in turn (e.g. ``∂x∂y``), which keeps second order.
Periodic axes wrap with :func:`torch.roll`. Everything is batched, differentiable and device-agnostic.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor

from safesvd_core.plugin import ConfigError, FieldDescription

#: Smallest grid along an axis for each derivative order: periodic, non-periodic.
_MIN_POINTS = {1: (3, 3), 2: (3, 4)}


def multi_indices(dim: int, k: int) -> list[tuple[int, ...]]:
    """All multi-indices ``β`` of length ``dim`` with ``|β| ≤ k``, by order, ``x`` first.

    ``multi_indices(2, 2)`` is ``[(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]``.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"dim: expected an integer ≥ 1, got {dim!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ConfigError(f"k: expected an integer ≥ 0, got {k!r}")
    return [
        beta
        for order in range(k + 1)
        for beta in sorted(itertools.product(range(order + 1), repeat=dim), reverse=True)
        if sum(beta) == order
    ]


def derivative(
    u: Tensor, orders: Sequence[int], spacing: Sequence[float], periodic: Sequence[bool]
) -> Tensor:
    """The partial derivative ``D^β u`` with ``β = orders`` (0, 1 or 2 per grid axis).

    ``u`` is ``(batch, channels, *grid)``; the result has the same shape. Order 0 everywhere
    returns ``u`` itself.
    """
    grid = tuple(u.shape[2:])
    if u.dim() < 3:
        raise ConfigError(f"field tensor: expected shape (batch, channels, *grid), got {tuple(u.shape)}")
    for what, values in (("orders", orders), ("spacing", spacing), ("periodic", periodic)):
        if len(values) != len(grid):
            raise ConfigError(
                f"{what}: expected one entry per grid axis ({len(grid)} for grid {grid}), got {len(values)}"
            )
    result = u
    for axis, order in enumerate(orders):
        if isinstance(order, bool) or order not in (0, 1, 2):
            raise ConfigError(f"orders[{axis}]: expected 0, 1 or 2, got {order!r}")
        if order:
            result = _along(result, 2 + axis, order, float(spacing[axis]), bool(periodic[axis]))
    return result


def _along(u: Tensor, dim: int, order: int, h: float, periodic: bool) -> Tensor:
    """One-axis derivative of ``order`` along tensor dimension ``dim``."""
    n = u.shape[dim]
    needed = _MIN_POINTS[order][0 if periodic else 1]
    if n < needed:
        kind = "periodic" if periodic else "non-periodic"
        raise ConfigError(
            f"grid axis {dim - 2} has {n} points; a {kind} derivative of order {order} needs at least "
            f"{needed}"
        )
    if periodic:
        forward, backward = torch.roll(u, -1, dim), torch.roll(u, 1, dim)
        if order == 1:
            return (forward - backward) / (2 * h)
        return (forward - 2 * u + backward) / (h * h)

    def at(start: int, length: int = 1) -> Tensor:
        return u.narrow(dim, start, length)

    if order == 1:
        interior = (at(2, n - 2) - at(0, n - 2)) / (2 * h)
        first = (-3 * at(0) + 4 * at(1) - at(2)) / (2 * h)
        last = (3 * at(n - 1) - 4 * at(n - 2) + at(n - 3)) / (2 * h)
    else:
        interior = (at(2, n - 2) - 2 * at(1, n - 2) + at(0, n - 2)) / (h * h)
        first = (2 * at(0) - 5 * at(1) + 4 * at(2) - at(3)) / (h * h)
        last = (2 * at(n - 1) - 5 * at(n - 2) + 4 * at(n - 3) - at(n - 4)) / (h * h)
    return torch.cat([first, interior, last], dim)


def partial_derivative(u: Tensor, field: FieldDescription, axis: str, order: int = 1) -> Tensor:
    """``∂^order u / ∂axis^order`` along the axis named ``axis`` (``"x"``, ``"y"`` or ``"z"``)."""
    orders = [0] * field.dim
    orders[field.axis(axis)] = order
    return derivative(u, orders, field.spacing, field.periodic)


def divergence(u: Tensor, field: FieldDescription) -> Tensor:
    """``Σ_i ∂u_i/∂x_i`` of the velocity channels, shape ``(batch, 1, *grid)``."""
    field.check_shape(u.shape)
    velocity = _velocity(u, field)
    return torch.stack([partial_derivative(velocity[axis], field, axis) for axis in field.axes]).sum(0)


def vorticity(u: Tensor, field: FieldDescription) -> Tensor:
    """Curl of the velocity: ``(batch, 1, *grid)`` in 2-D (``∂v/∂x − ∂u/∂y``),
    ``(batch, 3, *grid)`` in 3-D."""
    field.check_shape(u.shape)
    if field.dim == 1:
        raise ConfigError("vorticity: expected a 2-D or 3-D field, got a 1-D one")
    velocity = _velocity(u, field)

    def curl(a: str, b: str) -> Tensor:  # ∂u_b/∂a − ∂u_a/∂b
        return partial_derivative(velocity[b], field, a) - partial_derivative(velocity[a], field, b)

    if field.dim == 2:
        return curl("x", "y")
    return torch.cat([curl("y", "z"), curl("z", "x"), curl("x", "y")], dim=1)


def _velocity(u: Tensor, field: FieldDescription) -> dict[str, Tensor]:
    """Axis name → that velocity component as ``(batch, 1, *grid)``."""
    channels = field.velocity_channels()
    return {axis: u[:, channel : channel + 1] for axis, channel in zip(field.axes, channels, strict=True)}


__all__ = ["derivative", "divergence", "multi_indices", "partial_derivative", "vorticity"]
