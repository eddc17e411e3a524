"""Finite differences: second-order convergence on analytic fields, shapes, batching and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from safesvd_core import ConfigError
from safesvd_pde.finite_difference import derivative, multi_indices

SECOND_ORDER = [beta for beta in multi_indices(2, 2) if sum(beta) > 0] + [(2, 1), (2, 2)]


def _axis(n: int, periodic: bool, lo: float, hi: float) -> tuple[np.ndarray, float]:
    """Grid points and spacing:
    ``[lo, hi)`` with ``n`` cells if periodic, else ``[lo, hi]`` with ``n`` points."""
    if periodic:
        h = (hi - lo) / n
        return lo + h * np.arange(n), h
    return np.linspace(lo, hi, n), (hi - lo) / (n - 1)


def _plane_wave(coefficients, phase, beta, *coordinates):
    """``D^β sin(Σ a_i x_i + phase)``."""
    theta = phase + sum(a * x for a, x in zip(coefficients, coordinates, strict=True))
    scale = math.prod(a**b for a, b in zip(coefficients, beta, strict=True))
    return scale * np.sin(theta + sum(beta) * np.pi / 2)


def _gaussian_1d(alpha, centre, order, x):
    """The ``order``-th derivative of ``exp(−α (x − c)²)``."""
    s = x - centre
    g = np.exp(-alpha * s**2)
    return [g, -2 * alpha * s * g, (4 * alpha**2 * s**2 - 2 * alpha) * g][order]


def _error(exact, n, beta, periodic, bounds):
    """Max-norm error of ``derivative`` against ``exact(beta, *mesh)`` on an ``n``-scaled grid."""
    axes = [
        _axis(int(n * f), periodic, lo, hi) for f, (lo, hi) in zip((1.0, 1.5, 1.25), bounds, strict=False)
    ]
    mesh = np.meshgrid(*[points for points, _ in axes], indexing="ij")
    u = torch.from_numpy(exact((0,) * len(beta), *mesh))[None, None]
    approx = derivative(u, beta, [h for _, h in axes], [periodic] * len(beta))
    return float(np.abs(approx[0, 0].numpy() - exact(beta, *mesh)).max())


def _observed_order(exact, beta, periodic, bounds, n=16):
    coarse, fine = _error(exact, n, beta, periodic, bounds), _error(exact, 2 * n, beta, periodic, bounds)
    return math.log2(coarse / fine)


def test_multi_indices_lists_every_derivative_up_to_order_k() -> None:
    assert multi_indices(2, 2) == [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]
    assert multi_indices(1, 1) == [(0,), (1,)]
    assert len(multi_indices(3, 2)) == 10
    with pytest.raises(ConfigError, match="k"):
        multi_indices(2, -1)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("periodic", [True, False])
def test_one_dimensional_error_falls_as_h_squared(order: int, periodic: bool) -> None:
    if periodic:
        exact, bounds = (lambda beta, x: _plane_wave((3.0,), 0.3, beta, x)), [(0.0, 2 * np.pi)]
    else:
        exact, bounds = (lambda beta, x: _gaussian_1d(2.0, 0.2, beta[0], x)), [(-1.0, 1.0)]
    assert _observed_order(exact, (order,), periodic, bounds) >= 1.8


@pytest.mark.parametrize("beta", SECOND_ORDER)
def test_periodic_2d_error_falls_as_h_squared(beta: tuple[int, int]) -> None:
    # sin(x + 2y + 0.3) on [0, 2π) × [0, π): unequal spacing and grid sizes catch swapped axes.
    exact = lambda b, x, y: _plane_wave((1.0, 2.0), 0.3, b, x, y)  # noqa: E731
    assert _observed_order(exact, beta, True, [(0.0, 2 * np.pi), (0.0, np.pi)]) >= 1.8


@pytest.mark.parametrize("beta", SECOND_ORDER)
def test_non_periodic_2d_error_falls_as_h_squared(beta: tuple[int, int]) -> None:
    exact = lambda b, x, y: _plane_wave((1.3, -2.1), 0.4, b, x, y)  # noqa: E731
    assert _observed_order(exact, beta, False, [(-1.0, 1.0), (-0.5, 1.0)]) >= 1.8


@pytest.mark.parametrize("beta", SECOND_ORDER)
def test_non_periodic_2d_gaussian_error_falls_as_h_squared(beta: tuple[int, int]) -> None:
    def exact(b, x, y):
        return _gaussian_1d(2.0, 0.2, b[0], x) * _gaussian_1d(3.0, -0.1, b[1], y)

    assert _observed_order(exact, beta, False, [(-1.0, 1.0), (-1.0, 1.0)]) >= 1.8


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("beta", [(1, 0, 0), (0, 0, 2), (1, 1, 0), (0, 1, 1)])
def test_three_dimensional_smoke(beta: tuple[int, int, int], periodic: bool) -> None:
    exact = lambda b, x, y, z: _plane_wave((1.0, 2.0, 3.0), 0.1, b, x, y, z)  # noqa: E731
    bounds = [(0.0, 2 * np.pi), (0.0, np.pi), (0.0, 2 * np.pi / 3)] if periodic else [(-1.0, 1.0)] * 3
    assert _observed_order(exact, beta, periodic, bounds, n=8) >= 1.8


def test_linear_and_quadratic_fields_are_exact_up_to_the_edges() -> None:
    x = torch.linspace(0.0, 1.0, 7, dtype=torch.float64)
    u = (3 * x**2 - x + 2)[None, None]
    h = float(x[1] - x[0])
    torch.testing.assert_close(derivative(u, (1,), (h,), (False,)), (6 * x - 1)[None, None])
    torch.testing.assert_close(derivative(u, (2,), (h,), (False,)), torch.full_like(u, 6.0))


def test_batched_over_samples_and_channels() -> None:
    u = torch.randn(4, 3, 9, 7, dtype=torch.float64)
    together = derivative(u, (1, 1), (0.1, 0.2), (True, False))
    one_by_one = torch.cat(
        [
            derivative(u[i : i + 1, c : c + 1], (1, 1), (0.1, 0.2), (True, False))
            for i in range(4)
            for c in range(3)
        ]
    ).reshape(4, 3, 9, 7)
    assert together.shape == u.shape
    torch.testing.assert_close(together, one_by_one)


def test_derivative_is_differentiable() -> None:
    u = torch.randn(2, 1, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: derivative(t, (2, 1), (0.3, 0.2), (False, True)), (u,))


def test_order_zero_returns_the_field() -> None:
    u = torch.randn(1, 1, 5)
    assert derivative(u, (0,), (1.0,), (False,)) is u


@pytest.mark.parametrize(
    ("shape", "orders", "periodic", "message"),
    [
        ((1, 1, 3), (2,), (False,), "at least 4"),
        ((1, 1, 2), (1,), (True,), "at least 3"),
        ((1, 1, 5, 5), (1,), (True,), "orders: expected one entry per grid axis"),
        ((1, 1, 5), (3,), (True,), r"orders\[0\]: expected 0, 1 or 2"),
        ((5,), (1,), (True,), "expected shape"),
    ],
)
def test_bad_requests_raise_config_errors(shape, orders, periodic, message) -> None:
    with pytest.raises(ConfigError, match=message):
        derivative(torch.zeros(shape), orders, (1.0,) * len(periodic), periodic)
