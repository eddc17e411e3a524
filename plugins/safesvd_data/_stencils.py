"""Periodic 2-D stencils for the finite-difference generators, from :mod:`safesvd_pde.finite_difference`."""

from __future__ import annotations

from torch import Tensor

from safesvd_pde.finite_difference import derivative

_PERIODIC = (True, True)


def laplacian(u: Tensor, h: float) -> Tensor:
    """Five-point ``∇²u`` of ``(batch, channels, x, y)`` on a periodic grid of spacing ``h``."""
    return derivative(u, (2, 0), (h, h), _PERIODIC) + derivative(u, (0, 2), (h, h), _PERIODIC)


def gradient(u: Tensor, h: float) -> tuple[Tensor, Tensor]:
    """Central ``(∂x u, ∂y u)`` on a periodic grid of spacing ``h``."""
    return derivative(u, (1, 0), (h, h), _PERIODIC), derivative(u, (0, 1), (h, h), _PERIODIC)


__all__ = ["gradient", "laplacian"]
